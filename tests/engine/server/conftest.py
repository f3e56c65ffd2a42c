"""Serve engine apps over real HTTP on a free loopback port (uvicorn in a thread)."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import uvicorn
from engine_helpers import EngineProcess, ServeApp, SimAppFactory, engine_process
from fastapi import FastAPI

from sloserve_engine.contract.knobs import Knobs
from sloserve_engine.server.body import DEFAULT_MAX_BODY_BYTES
from sloserve_engine.server.simulated_app import SimulatedOptions, build_simulated_app
from sloserve_engine.server.supervisor import free_loopback_port
from sloserve_engine.sim import SimConfig, load_profile


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


@pytest.fixture(scope="module")
def engine_proc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    """One simulated engine process shared by a test module (starting one takes seconds)."""
    with engine_process(tmp_path_factory.mktemp("engine")) as proc:
        yield proc
