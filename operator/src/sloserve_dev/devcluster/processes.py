"""Start child processes with their output in log files, and stop exactly those processes.

Other people on the same machine run the same programs, so nothing here ever looks a process
up by name: each child gets its own session (process group) and is stopped through its PID.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

STOP_GRACE_S = 10.0


class PortInUseError(RuntimeError):
    """A fixed port that the control plane needs is already bound by someone else."""


class ProcessFailedError(RuntimeError):
    """A child exited (or never became ready); the message names its log file."""


def interrupt_on_sigterm() -> None:
    """Make SIGTERM (and an inherited, ignored SIGINT) raise KeyboardInterrupt.

    The children run in their own sessions, so only our ``with`` blocks stop them: dying on
    the default SIGTERM action would leave a whole control plane running.
    """

    def interrupt(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)


def free_port(host: str = "127.0.0.1") -> int:
    """A port the kernel just handed out; the tiny race until the child binds it is accepted."""
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def ensure_port_free(port: int, host: str = "127.0.0.1", what: str = "") -> None:
    """Fail with a message naming the port before a child dies on it with a cryptic log line."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            label = f" for {what}" if what else ""
            raise PortInUseError(
                f"port {host}:{port}{label} is already in use ({exc.strerror}); stop whatever "
                "holds it (e.g. `ss -ltnp | grep :{port}`) or let sloserve pick free ports "
                "(omit the fixed port)".replace("{port}", str(port))
            ) from exc


class ManagedProcess:
    """One child process; ``stop()`` sends SIGTERM, then SIGKILL after a grace period."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str | Path],
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = [str(a) for a in argv]
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as log:
            self.popen = subprocess.Popen(
                self.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=dict(env) if env is not None else None,
                cwd=cwd,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def running(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def failure(self, what: str) -> ProcessFailedError:
        return ProcessFailedError(
            f"{self.name} {what}; log: {self.log_path}\n--- last lines ---\n{self.log_tail()}"
        )

    def terminate(self) -> None:
        """Ask the child to exit (SIGTERM) without waiting; lets many children stop at once."""
        if self.popen.poll() is None:
            self._signal(signal.SIGTERM)

    def stop(self, grace_s: float = STOP_GRACE_S) -> int | None:
        """Stop this child (and anything it forked into its own session); return its exit code."""
        if self.popen.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                self.popen.wait(grace_s)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.popen.wait()
        return self.popen.returncode

    def _signal(self, sig: signal.Signals) -> None:
        # The child leads its own session, so its process-group id is its PID: this reaches
        # only what we started.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, sig)


def wait_until(
    ready: Callable[[], bool],
    proc: ManagedProcess,
    what: str,
    timeout_s: float,
    interval_s: float = 0.2,
) -> None:
    """Poll ``ready`` until it holds; fail fast (with the log tail) if ``proc`` dies."""
    deadline = time.monotonic() + timeout_s
    while True:
        if not proc.running():
            raise proc.failure(f"exited with code {proc.popen.returncode} before {what}")
        try:
            if ready():
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise proc.failure(f"not {what} after {timeout_s:.0f} s")
        time.sleep(interval_s)
