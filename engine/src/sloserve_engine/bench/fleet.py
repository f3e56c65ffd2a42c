"""Real ``sloserve-engine --simulated`` and ``sloserve-router`` processes on loopback.

For the router benchmark and the router's process tests: each child runs in
its own session with its output in a log file, and is stopped through its own
PID only (other people run the same programs on the same machine).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass(slots=True)
class Child:
    """One started process and where it listens."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def hostport(self) -> str:
        return f"127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: the process dies mid-whatever (what a crashed pod does)."""
        if self.alive():
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self, grace_s: float = 10.0) -> None:
        if not self.alive():
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(grace_s)
        except subprocess.TimeoutExpired:
            self.kill()

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _start(
    name: str,
    module: str,
    args: Sequence[str],
    log_dir: Path,
    port: int,
    cpus: AbstractSet[int] | None = None,
) -> Child:
    """``cpus``: the CPUs the child may run on (what ``taskset -c`` sets), before it starts."""
    log = log_dir / f"{name}.log"

    def pin() -> None:
        if cpus is not None:
            os.sched_setaffinity(0, cpus)

    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=pin if cpus is not None else None,
        )
    return Child(name, port, process, log)


def wait_ready(child: Child, path: str = "/sloserve/health", timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not child.alive():
            raise RuntimeError(f"{child.name} exited {child.process.returncode}:\n{child.tail()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(child.url + path, timeout=1.0).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{child.name} not ready after {timeout_s:g} s:\n{child.tail()}")


@dataclass(slots=True)
class Fleet:
    """Engines and routers started together; :meth:`stop` ends exactly these."""

    log_dir: Path
    token_file: Path
    engines: list[Child] = field(default_factory=list)
    routers: list[Child] = field(default_factory=list)

    def start_engine(
        self,
        *extra: str,
        time_scale: float = 1.0,
        model: str = "sim",
        cpus: AbstractSet[int] | None = None,
    ) -> Child:
        port = free_port()
        args = [
            "--simulated", "--host", "127.0.0.1", "--port", str(port),
            "--served-model-name", model, "--admin-token-file", str(self.token_file),
            "--time-scale", str(time_scale), "--log-level", "warning", *extra,
        ]  # fmt: skip
        child = _start(f"engine-{len(self.engines)}", "sloserve_engine.server.cli", args,
                       self.log_dir, port, cpus)  # fmt: skip
        self.engines.append(child)
        return child

    def start_router(self, *extra: str, engines: Sequence[str] | None = None,
                     dns: str | None = None, file: Path | None = None,
                     model: str = "sim",
                     cpus: AbstractSet[int] | None = None) -> Child:  # fmt: skip
        """A router in front of ``engines`` (``host:port``; default: every engine started),
        of what the name in ``dns`` (``name:port``) resolves to, or of the engines listed in
        ``file`` (re-read at every resolution)."""
        port = free_port()
        targets = ",".join([e.hostport for e in self.engines] if engines is None else engines)
        where = ["--engines", targets]
        if dns:
            where = ["--engines-dns", dns]
        elif file is not None:
            where = ["--engines-file", str(file)]
        args = [
            "--host", "127.0.0.1", "--port", str(port), *where,
            "--served-model-name", model, "--admin-token-file", str(self.token_file),
            "--log-level", "warning", *extra,
        ]  # fmt: skip
        child = _start(f"router-{len(self.routers)}", "sloserve_engine.router.cli", args,
                       self.log_dir, port, cpus)  # fmt: skip
        self.routers.append(child)
        return child

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        for child in [*self.engines, *self.routers]:
            wait_ready(child, timeout_s=timeout_s)

    def stop(self) -> None:
        for child in [*self.routers, *self.engines]:
            child.stop()


@contextlib.contextmanager
def fleet(log_dir: Path, token: str = "bench-admin-token") -> Iterator[Fleet]:
    """A :class:`Fleet` whose children are stopped on exit, whatever happened."""
    log_dir.mkdir(parents=True, exist_ok=True)
    token_file = log_dir / "admin-token"
    token_file.write_text(token + "\n")
    f = Fleet(log_dir, token_file)
    try:
        yield f
    finally:
        f.stop()
