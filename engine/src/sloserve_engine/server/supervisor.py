"""Real mode: run ``vllm serve`` as a child and stop it gracefully with the server."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import AsyncIterator, Callable, Mapping, Sequence

log = logging.getLogger(__name__)

STOP_GRACE_S = 25.0
"""SIGTERM → SIGKILL grace for vLLM; below Kubernetes' default 30 s termination grace."""


def free_loopback_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class VllmProcess:
    """The child process; :attr:`returncode` is set once it has exited."""

    def __init__(self, argv: Sequence[str], env: Mapping[str, str]) -> None:
        self.argv = list(argv)
        self.env = dict(env)
        self.returncode: int | None = None
        self._proc: asyncio.subprocess.Process | None = None

    @contextlib.asynccontextmanager
    async def running(self, on_exit: Callable[[int], None]) -> AsyncIterator[None]:
        """Start the child; call ``on_exit`` if it dies; on leaving, SIGTERM then SIGKILL it."""
        log.info("starting: %s", " ".join(self.argv))
        self._proc = await asyncio.create_subprocess_exec(*self.argv, env=self.env)
        watcher = asyncio.create_task(self._watch(on_exit))
        try:
            yield
        finally:
            watcher.cancel()
            await self.stop()

    async def _watch(self, on_exit: Callable[[int], None]) -> None:
        assert self._proc is not None
        self.returncode = await self._proc.wait()
        log.error("vllm serve exited with status %d", self.returncode)
        on_exit(self.returncode)

    async def stop(self) -> None:
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            self.returncode = await asyncio.wait_for(proc.wait(), STOP_GRACE_S)
        except TimeoutError:
            log.warning("vllm serve ignored SIGTERM for %.0f s; killing it", STOP_GRACE_S)
            proc.kill()
            self.returncode = await proc.wait()
