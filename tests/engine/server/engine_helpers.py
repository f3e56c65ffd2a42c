"""Helpers the engine server tests import (a plain module: ``conftest`` is not importable
by name when pytest collects several test directories)."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from fastapi import FastAPI

from sloserve_engine.server.supervisor import free_loopback_port

ServeApp = Callable[[FastAPI], AbstractContextManager[str]]
SimAppFactory = Callable[..., FastAPI]


@dataclass(frozen=True)
class EngineProcess:
    """A running ``sloserve-engine --simulated`` child: its URL, admin token and logs."""

    url: str
    token: str
    stdout: Path
    stderr: Path
    model: str = "sim-model"


@contextmanager
def engine_process(tmp: Path, *extra: str) -> Iterator[EngineProcess]:
    """Start the real CLI (``python -m sloserve_engine.server.cli --simulated``); SIGTERM it
    on exit. Its stdout/stderr (uvicorn's access and error logs) go to files."""
    token = secrets.token_urlsafe(24)
    (tmp / "token").write_text(token + "\n")
    port = free_loopback_port()
    out, err = tmp / "stdout.log", tmp / "stderr.log"
    argv = [
        sys.executable, "-m", "sloserve_engine.server.cli", "--simulated",
        "--host", "127.0.0.1", "--port", str(port), "--served-model-name", "sim-model",
        "--admin-token-file", str(tmp / "token"), "--time-scale", "20", *extra,
    ]  # fmt: skip
    with out.open("wb") as fout, err.open("wb") as ferr:
        proc = subprocess.Popen(argv, stdout=fout, stderr=ferr, env=os.environ.copy())
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"engine exited {proc.returncode}: {err.read_text()}")
            try:
                if httpx.get(f"{url}/sloserve/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("engine did not become healthy")
            time.sleep(0.1)
        yield EngineProcess(url, token, out, err)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
