"""A tier of real ``sloserve-router`` processes in front of the bench's engine fleet.

The routers find the engines through ``--engines-file``: this module rewrites the file with the
fleet's ready, non-draining replicas (what a headless Service would list) whenever they change,
and the routers read it again every ``RESOLVE_S``. The routers, their queue, admission control,
metrics and the relay are the real ones; engine shields are off (no admin token), which a
single router does not need.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from pathlib import Path

import httpx

from sloserve_operator.autoscaler.metrics_source import MetricsEndpoint

from .fleet import EngineFleet

ROUTER = [sys.executable, "-m", "sloserve_engine.router.cli", "--log-level", "warning"]
RESOLVE_S = 0.5


class RouterTier:
    def __init__(self, count: int, base_port: int, log_dir: Path, args: list[str]) -> None:
        self._count, self._base_port, self._log_dir, self._args = count, base_port, log_dir, args
        self.engines_file = log_dir / "engines"
        self._processes: list[asyncio.subprocess.Process] = []
        self._published: list[str] | None = None

    @property
    def urls(self) -> list[str]:
        return [f"http://127.0.0.1:{self._base_port + i}" for i in range(self._count)]

    def endpoints(self) -> tuple[MetricsEndpoint, ...]:
        return tuple(MetricsEndpoint(f"router-{i}", u) for i, u in enumerate(self.urls))

    def publish(self, fleet: EngineFleet) -> None:
        """Write the ready engines' addresses (atomically) if they changed."""
        lines = sorted(f"127.0.0.1:{r.port}" for r in fleet.ready())
        if lines == self._published:
            return
        tmp = self.engines_file.with_suffix(".tmp")
        tmp.write_text("".join(f"{line}\n" for line in lines))
        tmp.replace(self.engines_file)
        self._published = lines

    async def start(self, fleet: EngineFleet) -> None:
        self.publish(fleet)
        for i in range(self._count):
            log = (self._log_dir / f"router-{i}.log").open("wb")
            self._processes.append(
                await asyncio.create_subprocess_exec(
                    *ROUTER,
                    *self._args,
                    "--engines-file",
                    str(self.engines_file),
                    "--resolve-interval-s",
                    str(RESOLVE_S),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self._base_port + i),
                    stdout=log,
                    stderr=asyncio.subprocess.STDOUT,
                )
            )
            log.close()
        async with httpx.AsyncClient(timeout=1.0) as client:
            for url, process in zip(self.urls, self._processes, strict=True):
                while process.returncode is None:
                    with contextlib.suppress(httpx.HTTPError):
                        if (await client.get(f"{url}/metrics")).status_code == 200:
                            break
                    await asyncio.sleep(0.2)
                if process.returncode is not None:
                    raise RuntimeError(f"router at {url} exited {process.returncode}")

    async def close(self) -> None:
        for process in self._processes:
            if process.returncode is None:
                process.terminate()
        for process in self._processes:
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()
