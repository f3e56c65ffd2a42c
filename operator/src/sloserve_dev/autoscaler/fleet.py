"""A fleet of real ``sloserve-engine --simulated`` processes on loopback ports, without Kubernetes.

This is the closed-loop harness's stand-in for a Deployment: ``scale_to(n)`` starts or drains
processes, a process is "ready" once ``GET /sloserve/health`` answers, replicas beyond
``gpu_limit`` stay "pending" (no free GPU), and a replica being removed first stops receiving
requests and is terminated once the engine itself holds no request (or after a grace period).
The engines, their HTTP API and their metrics are the real ones; only the orchestration is ours.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from sloserve_operator.autoscaler.metrics_source import MetricsEndpoint, read_exposition

ENGINE = [
    sys.executable,
    "-m",
    "sloserve_engine.server.cli",
    "--simulated",
    "--log-level",
    "warning",
]


@dataclass
class Replica:
    name: str
    port: int
    process: asyncio.subprocess.Process
    ready: bool = False
    draining: bool = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class EngineFleet:
    def __init__(
        self,
        engine_args: list[str],
        base_port: int,
        log_dir: Path,
        gpu_limit: int = 1000,
        drain_grace_s: float = 30.0,
        unlist_s: float = 0.0,
    ) -> None:
        """``unlist_s``: wall seconds a draining replica keeps serving before it is checked for
        idleness, the time whoever places requests (routers, the load generator) takes to stop
        placing on it."""
        self._args = engine_args
        self._unlist = unlist_s
        self._next_port = base_port
        self._log_dir = log_dir
        self._gpu_limit = gpu_limit
        self._grace = drain_grace_s
        self._serial = 0
        self.replicas: list[Replica] = []
        self.desired = 0
        self._background: set[asyncio.Task[None]] = set()

    @property
    def pending(self) -> int:
        return max(0, self.desired - len([r for r in self.replicas if not r.draining]))

    def ready(self) -> list[Replica]:
        return [r for r in self.replicas if r.ready and not r.draining]

    def endpoints(self) -> tuple[MetricsEndpoint, ...]:
        return tuple(MetricsEndpoint(r.name, r.url) for r in self.ready())

    async def scale_to(self, n: int) -> None:
        self.desired = n
        live = [r for r in self.replicas if not r.draining]
        for replica in live[n:][::-1]:
            replica.draining = True  # unlisted now, not when the drain task first runs
            self._spawn(self._drain(replica))
        while len([r for r in self.replicas if not r.draining]) < min(n, self._gpu_limit):
            await self._start()

    async def _start(self) -> None:
        self._serial += 1
        name, port = f"engine-{self._serial}", self._next_port
        self._next_port += 1
        log = (self._log_dir / f"{name}.log").open("wb")
        process = await asyncio.create_subprocess_exec(
            *ENGINE,
            *self._args,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
        )
        log.close()
        replica = Replica(name, port, process)
        self.replicas.append(replica)
        self._spawn(self._probe(replica))

    async def _probe(self, replica: Replica) -> None:
        async with httpx.AsyncClient(timeout=1.0) as client:
            while replica.process.returncode is None and not replica.draining:
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"{replica.url}/sloserve/health")).status_code == 200:
                        replica.ready = True
                        return
                await asyncio.sleep(0.2)

    async def _drain(self, replica: Replica) -> None:
        """Stop placing on the replica, then stop it once the engine holds nothing.

        The requests are placed by other processes (routers, the load generator), so after
        ``unlist_s`` (their time to see the new list) the engine's own queues decide: stopping
        at once cut the requests it was serving (502) and refused the ones a router placed
        before its next re-read of the engine list (503, a miss the autoscaler then counted)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._grace
        await asyncio.sleep(self._unlist)
        async with httpx.AsyncClient(timeout=2.0) as client:
            while loop.time() < deadline and await _holds(client, replica):
                await asyncio.sleep(0.2)
        await self._stop(replica)

    async def _stop(self, replica: Replica) -> None:
        if replica.process.returncode is None:
            replica.process.terminate()
            try:
                await asyncio.wait_for(replica.process.wait(), 10)
            except TimeoutError:
                replica.process.kill()
                await replica.process.wait()
        if replica in self.replicas:
            self.replicas.remove(replica)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def close(self) -> None:
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        await asyncio.gather(*(self._stop(r) for r in list(self.replicas)))


async def _holds(client: httpx.AsyncClient, replica: Replica) -> bool:
    """Whether the engine still runs or queues a request (unknown counts as yes while the
    process lives: a slow answer is no proof that it is idle)."""
    if replica.process.returncode is not None:
        return False
    try:
        response = await client.get(f"{replica.url}/metrics")
        response.raise_for_status()
        reading = read_exposition(response.text)
    except (httpx.HTTPError, ValueError):
        return True
    return reading.running + reading.waiting > 0
