"""Knob pushes against real simulated engines over real HTTP (``sloserve-engine --simulated``)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sloserve_engine.contract.knobs import Knobs
from sloserve_operator import knobpush
from sloserve_operator.knobpush import AdminEndpoint

TOKEN = "test-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def engines(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[AdminEndpoint]]:
    tmp = tmp_path_factory.mktemp("engines")
    (tmp / "knobs.json").write_text("{}")
    (tmp / "token").write_text(TOKEN)
    exe = Path(sys.executable).parent / "sloserve-engine"
    procs, pods = [], []
    for i in range(2):
        port = free_port()
        argv = [str(exe), "--simulated", "--host", "127.0.0.1", "--port", str(port)]
        argv += ["--served-model-name", "m", "--knobs-file", str(tmp / "knobs.json")]
        argv += ["--admin-token-file", str(tmp / "token")]
        log = (tmp / f"engine{i}.log").open("w")
        procs.append(subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT))
        pods.append(AdminEndpoint(f"pod-{i}", f"uid-{i}", "127.0.0.1", port))
    try:
        deadline = time.monotonic() + 60
        for pod in pods:
            while True:
                try:
                    httpx.get(f"http://127.0.0.1:{pod.port}/sloserve/health", timeout=1)
                    break
                except httpx.HTTPError:
                    if time.monotonic() > deadline:
                        pytest.fail(f"engine did not start; see {tmp}")
                    time.sleep(0.2)
        yield pods
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(10)


async def test_push_reaches_every_engine(engines: list[AdminEndpoint]) -> None:
    knobs = Knobs(policy="vllm", reservation_ratio=0.2)
    async with httpx.AsyncClient() as client:
        results = await knobpush.push(client, engines, knobs, TOKEN)
        assert {r.revision for r in results.values()} == {knobs.revision()}
        for pod in engines:
            got = httpx.get(f"http://127.0.0.1:{pod.port}/sloserve/knobs").json()
            assert got["revision"] == knobs.revision()
        # Back to the defaults, so test order does not matter.
        await knobpush.push(client, engines, Knobs(), TOKEN)


async def test_wrong_token_is_reported_as_rejected(engines: list[AdminEndpoint]) -> None:
    async with httpx.AsyncClient() as client:
        result = await knobpush.push_one(client, engines[0], "{}", "not-the-token")
    assert (result.revision, result.rejected, result.status) == (None, True, 401)
    assert "401" in result.message


async def test_invalid_document_is_rejected_naming_the_field(engines: list[AdminEndpoint]) -> None:
    async with httpx.AsyncClient() as client:
        result = await knobpush.push_one(client, engines[0], '{"reservationRatio": 0.9}', TOKEN)
    assert result.rejected and result.status == 422
    assert "reservationRatio" in result.message


async def test_unreachable_pod_is_not_a_rejection() -> None:
    pod = AdminEndpoint("gone", "uid", "127.0.0.1", free_port())
    async with httpx.AsyncClient() as client:
        result = await knobpush.push_one(client, pod, "{}", TOKEN)
    assert result.revision is None and not result.rejected
    assert result.message.startswith("unreachable")


def test_ipv6_urls_are_bracketed() -> None:
    assert knobpush.knobs_url("fd00::1") == "http://[fd00::1]:8000/sloserve/knobs"
