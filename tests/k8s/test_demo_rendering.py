"""Pure parts of the demo: where engines listen, the load swing, the status view."""

from __future__ import annotations

import random

import pytest
from rich.console import Console

from sloserve_dev.devcluster.demo import engine_url, render_status
from sloserve_dev.devcluster.loadgen import LoadProfile, LoadStats, completion_body, rate_at


def pod(args: list[str], ports: list[dict[str, int]] | None = None) -> dict[str, object]:
    container: dict[str, object] = {"command": ["sloserve-engine"], "args": args}
    if ports is not None:
        container["ports"] = ports
    return {"spec": {"containers": [container]}, "status": {"podIP": "127.64.0.7"}}


def test_engine_url_prefers_the_port_argument_then_container_port_then_default() -> None:
    assert (
        engine_url(pod(["--port", "9000"], [{"containerPort": 8000}])) == "http://127.64.0.7:9000"
    )
    assert engine_url(pod(["--port=9001"])) == "http://127.64.0.7:9001"
    assert engine_url(pod([], [{"containerPort": 8100}])) == "http://127.64.0.7:8100"
    assert engine_url(pod([])) == "http://127.64.0.7:8000"
    assert engine_url({"spec": {"containers": []}, "status": {}}) is None


def test_rate_swings_from_low_to_peak_and_back() -> None:
    profile = LoadProfile(low_rps=2.0, peak_rps=20.0, period_s=100.0)
    assert rate_at(profile, 0.0) == pytest.approx(2.0)
    assert rate_at(profile, 50.0) == pytest.approx(20.0)
    assert rate_at(profile, 100.0) == pytest.approx(2.0)


def test_completion_body_carries_token_prompt_length_bounds_and_slo_class() -> None:
    profile = LoadProfile(prompt_tokens=(3, 5), output_tokens=(7, 7))
    body = completion_body("m", random.Random(1), profile, slo_class="interactive")
    assert 3 <= len(body["prompt"]) <= 5  # type: ignore[arg-type]
    assert body["max_tokens"] == 7
    assert body["vllm_xargs"] == {"slo_class": "interactive"}


def test_status_view_shows_service_numbers_pods_load_and_events() -> None:
    service = {
        "metadata": {"name": "llama-8b"},
        "status": {
            "replicas": 3,
            "readyReplicas": 2,
            "sloAttainment": 0.8712,
            "kvPressure": 0.91,
            "lastScale": {"from": 2, "to": 3, "reason": "KVPressure"},
        },
    }
    pods = [
        {
            "metadata": {"name": "llama-8b-abc"},
            "spec": {"nodeName": "gpu-h100-0"},
            "status": {"podIP": "127.64.0.2", "phase": "Running"},
        }
    ]
    stats = LoadStats(sent=10, ok=9, failed=1, rps=12.5, last_error="boom")
    events = [{"reason": "ScaledUp", "message": "2 -> 3: kv pressure 0.91 > 0.80"}]
    console = Console(width=160, record=True)
    console.print(render_status(service, pods, stats, events))
    text = console.export_text()
    for expected in (
        "llama-8b",
        "0.871",
        "0.910",
        "2->3 KVPressure",
        "llama-8b-abc",
        "127.64.0.2",
        "12.5",
        "ScaledUp",
        "last load error: boom",
    ):
        assert expected in text
