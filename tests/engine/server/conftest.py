"""Serve engine apps over real HTTP on a free loopback port (uvicorn in a thread)."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from sloserve_engine.knobs import Knobs
from sloserve_engine.server.body import DEFAULT_MAX_BODY_BYTES
from sloserve_engine.server.simulated_app import SimulatedOptions, build_simulated_app
from sloserve_engine.server.supervisor import free_loopback_port
from sloserve_engine.sim import SimConfig, load_profile

ServeApp = Callable[[FastAPI], AbstractContextManager[str]]


@contextmanager
def serve(app: FastAPI) -> Iterator[str]:
    """Yield the base URL while uvicorn serves ``app``; logs propagate to the root logger."""
    port = free_loopback_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, log_level="debug")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "token"
    path.write_text(secrets.token_urlsafe(24) + "\n")
    return path


def simulated_app(
    *,
    knobs: Knobs | None = None,
    token_file: Path | None = None,
    time_scale: float = 5.0,
    kv_tokens: int = 97_488,
    max_model_len: int = 8192,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> FastAPI:
    return build_simulated_app(
        SimulatedOptions(
            served_model_name="sim-model",
            knobs=knobs or Knobs(policy="vllm"),
            profile=load_profile("h200-llama-3.1-8b"),
            sim_config=SimConfig(kv_tokens=kv_tokens, max_model_len=max_model_len),
            admin_token_file=token_file,
            time_scale=time_scale,
            max_body_bytes=max_body_bytes,
        )
    )


SimAppFactory = Callable[..., FastAPI]


@pytest.fixture
def serve_app() -> ServeApp:
    return serve


@pytest.fixture
def make_sim_app() -> SimAppFactory:
    return simulated_app


@pytest.fixture
def base(token_file: Path, serve_app: ServeApp, make_sim_app: SimAppFactory) -> Iterator[str]:
    """URL of a simulated engine whose admin API takes writes with ``token_file``'s token."""
    with serve_app(make_sim_app(token_file=token_file)) as url:
        yield url


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


@pytest.fixture(scope="module")
def engine_proc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    """One simulated engine process shared by a test module (starting one takes seconds)."""
    with engine_process(tmp_path_factory.mktemp("engine")) as proc:
        yield proc
