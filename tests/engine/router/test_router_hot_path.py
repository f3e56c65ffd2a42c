"""The router's raw-ASGI hot path over real processes: limits and refusals the FastAPI stack
used to give, headers passed through both ways, keep-alive to the engine; and the
``latency``/``relay`` phases of ``sloserve bench router`` with their one-line summary."""

from __future__ import annotations

import argparse
import json
import math
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sloserve_engine.bench import router as bench_router
from sloserve_engine.bench.fleet import Fleet, fleet
from sloserve_engine.bench.router_perf import pinning

LIMIT = 64 * 1024


@pytest.fixture(scope="module")
def small_router(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    with fleet(tmp_path_factory.mktemp("hot")) as f:
        f.start_engine(time_scale=5.0)
        f.start_router("--max-body-bytes", str(LIMIT))
        f.wait_ready()
        yield f


def _error(r: httpx.Response, status: int) -> dict[str, object]:
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["code"] == status
    return dict(error)


def _invalid(f: Fleet) -> float:
    for line in httpx.get(f.routers[0].url + "/metrics").text.splitlines():
        if line.startswith('sloserve_router_requests_total{outcome="invalid"}'):
            return float(line.split()[-1])
    raise AssertionError("no invalid outcome exported")


@pytest.mark.slow
def test_bodies_over_the_limit_get_413_by_length_and_while_streaming_in(
    small_router: Fleet,
) -> None:
    url = small_router.routers[0].url + "/v1/completions"
    before = _invalid(small_router)
    big = json.dumps({"model": "sim", "prompt": "x", "pad": "y" * LIMIT})
    declared = httpx.post(url, content=big, headers={"content-type": "application/json"})
    assert "router's limit" in str(_error(declared, 413)["message"])

    def chunks() -> Iterator[bytes]:  # chunked: no Content-Length to refuse by
        yield b'{"model": "sim", "prompt": "x", "pad": "'
        for _ in range(2 * LIMIT // 8192):
            yield b"y" * 8192
        yield b'"}'

    _error(httpx.post(url, content=chunks()), 413)
    assert _invalid(small_router) == before + 2


@pytest.mark.slow
def test_other_methods_on_the_hot_paths_get_405_in_the_openai_shape(small_router: Fleet) -> None:
    r = httpx.get(small_router.routers[0].url + "/v1/chat/completions")
    _error(r, 405)
    assert r.headers["allow"] == "POST"
    _error(httpx.get(small_router.routers[0].url + "/nope"), 404)


@pytest.mark.slow
def test_headers_pass_through_both_ways_and_engine_connections_are_reused(
    small_router: Fleet,
) -> None:
    router, engine = small_router.routers[0], small_router.engines[0]
    body = {"model": "sim", "prompt": "hi", "max_tokens": 2}
    with httpx.Client() as client:
        for _ in range(5):
            r = client.post(router.url + "/v1/completions", json=body)
            assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] == 2
            # the engine's own headers (and not a second copy of hop-by-hop ones) come back
            assert r.headers["content-type"] == "application/json"
            assert int(r.headers["content-length"]) == len(r.content)
    stream = httpx.post(router.url + "/v1/completions", json={**body, "stream": True})
    assert stream.headers["content-type"].startswith("text/event-stream")
    assert stream.text.rstrip().endswith("data: [DONE]")
    # keep-alive: the router holds a handful of connections to the engine, not one a request
    engine_port = str(engine.port)
    established = [
        line
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]
        if line.split()[2].endswith(f":{int(engine_port):04X}") and line.split()[3] == "01"
    ]
    assert 1 <= len(established) <= 4, established


@pytest.mark.slow
def test_router_knobs_refusals_use_the_openai_shape_and_the_body_limit(
    small_router: Fleet,
) -> None:
    url = small_router.routers[0].url + "/sloserve/knobs"
    before = httpx.get(url).json()
    unauthenticated = httpx.put(url, json={"placement": "p2c"})
    assert _error(unauthenticated, 401)["message"] == unauthenticated.json()["detail"]
    auth = {"Authorization": "Bearer " + small_router.token_file.read_text().strip()}
    big = b'{"placement": "p2c"}' + b" " * LIMIT
    assert "router's limit" in str(
        _error(httpx.put(url, content=big, headers=auth), 413)["message"]
    )
    bad = httpx.put(url, json={"queueLimit": -1}, headers=auth)
    _error(bad, 422)
    assert bad.json()["errors"][0]["field"] == "queueLimit"
    assert httpx.get(url).json() == before  # nothing changed


def test_pinning_gives_the_router_a_cpu_of_its_own_or_none() -> None:
    available = sorted(os.sched_getaffinity(0))
    assert pinning(-1).router is None
    if len(available) < 2:
        assert pinning(None).router is None
        return
    pin = pinning(None)
    assert pin.router == {available[-1]} and pin.rest == set(available[:-1])
    with pytest.raises(ValueError, match="--router-cpu"):
        pinning(max(available) + 1)


@pytest.mark.slow
def test_latency_and_relay_phases_print_a_json_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    p = argparse.ArgumentParser()
    bench_router.add_arguments(p)
    args = p.parse_args(
        [
            "--skip",
            "policies",
            "--latency-samples",
            "5",
            "--relay-streams",
            "3",
            "--relay-tokens",
            "50",
            "--relay-engines",
            "1",
            "--log-dir",
            str(tmp_path),
            "--json",
            str(tmp_path / "r.json"),
        ]
    )
    assert bench_router.run(args) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["relay"]["tokens"] == 3 * 50 and report["latency"]["samples"] == 5
    assert report["latency"]["decisions"] == 2 * 5  # both routers, the measured samples only
    assert summary["relay_tokens_per_s"] == round(report["relay"]["tokens_per_wall_s"])
    assert 1 <= report["relay"]["client_chunks"] <= 3 * 50 + 3 * 2  # events, role and [DONE]
    paired = report["latency"]["router_no_shield_paired_added_median_ms"]
    assert summary["added_p50_ms"] == round(paired, 3)
    assert summary["targets_met"]["decision_p99_le_ms"] == (summary["decision_p99_le_ms"] <= 2.0)
    assert set(summary["targets_met"]) == {
        "added_p50_ms", "added_p99_ms", "decision_p99_le_ms", "relay_tokens_per_s",
    }  # fmt: skip


def test_a_relay_too_short_for_the_cpu_clock_reports_no_per_cpu_rate() -> None:
    """``/proc`` counts CPU in clock ticks: a short relay can show 0 s and a NaN rate, which
    must come out as ``null``, not crash the summary (seen once under load)."""
    relay = {
        "tokens_per_wall_s": 150.0,
        "tokens_per_router_cpu_s": math.nan,
        "router_cpu_share": 0.0,
        "tokens_per_chunk": 1.0,
        "chunks_per_router_cpu_s": math.nan,
    }
    out = bench_router.summary(bench_router.RouterReport("c", "m", {}, relay=relay))
    assert out["relay_tokens_per_router_cpu_s"] is None
    assert out["relay_chunks_per_router_cpu_s"] is None
    assert out["relay_tokens_per_s"] == 150
