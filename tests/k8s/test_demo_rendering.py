"""Pure parts of the demo: where engines listen, the load swing, the status view."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from rich.console import Console

from sloserve_dev.devcluster.demo import (
    PlainLines,
    View,
    as_simulated,
    at_zero,
    engine_url,
    event_line,
    load_targets,
    next_steps,
    render_status,
    status_line,
    with_scale_to_zero,
)
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
        },
        _router("llama-8b-router-xyz", True, "127.64.0.5"),
    ]
    service["status"]["readyRouters"] = 1
    stats = LoadStats(sent=10, ok=9, failed=1, rps=12.5, last_error="boom")
    events = [{"reason": "ScaledUp", "message": "2 -> 3: kv pressure 0.91 > 0.80"}]
    console = Console(width=160, record=True)
    console.print(render_status(service, pods, stats, events, "router"))
    text = console.export_text()
    for expected in (
        "llama-8b",
        "0.871",
        "0.910",
        "2->3 KVPressure",
        "llama-8b-abc",
        "127.64.0.2",
        "router pods",
        "llama-8b-router-xyz",
        "127.64.0.5",
        "router",
        "12.5",
        "ScaledUp",
        "last load error: boom",
    ):
        assert expected in text


def test_next_steps_are_paste_ready_and_say_where_logs_are() -> None:
    text = next_steps(
        Path("/w/kubeconfig"), Path("/c/bin"), "sloserve-demo", "llama-8b", Path("/w")
    )
    assert "  export KUBECONFIG=/w/kubeconfig PATH=/c/bin:$PATH" in text.splitlines()
    assert "kubectl -n sloserve-demo describe llms llama-8b" in text
    assert "/w/pods/sloserve-demo_<pod>_<uid>/container.log" in text
    assert "Ctrl-C" in text


def test_status_line_is_one_timestamped_line_with_the_service_numbers() -> None:
    service = {"status": {"replicas": 2, "readyReplicas": 1, "sloAttainment": 0.987}}
    ready_pod = {"status": {"conditions": [{"type": "Ready", "status": "True"}]}}
    stats = LoadStats(sent=10, ok=9, failed=1, rps=4.0)
    line = status_line(
        0.0, service, [ready_pod, {}, _router("r", True, "127.0.0.9")], stats, "router"
    )
    assert line.startswith("1970-01-01T00:00:00Z status replicas=2 ready=1 pods=1/2 routers=1/1 ")
    assert " via=router attainment=0.987 kv_pressure=- rps=4.0 sent=10 ok=9 failed=1" in line
    assert "\n" not in line
    assert status_line(0.0, None, [], LoadStats()).count("=-") == 5  # nothing known yet
    # Why requests fail (a router's 429, an engine's 503) shows on a pipe too.
    stats.last_error = "http://127.0.0.8:8000: HTTP 429 rejected\nbody"
    line = status_line(0.0, service, [], stats, "router")
    assert line.endswith(" last_error='http://127.0.0.8:8000: HTTP 429 rejected\\nbody'")


def _router(name: str, ready: bool, ip: str) -> dict[str, object]:
    return {
        "metadata": {"name": name, "labels": {"app.kubernetes.io/name": "sloserve-router"}},
        "spec": {
            "containers": [{"command": ["sloserve-router"], "ports": [{"containerPort": 8000}]}]
        },
        "status": {
            "podIP": ip,
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def _engine(name: str, ready: bool, ip: str) -> dict[str, object]:
    pod = _router(name, ready, ip)
    pod["metadata"] = {"name": name, "labels": {"app.kubernetes.io/name": "sloserve-engine"}}
    return pod


def test_load_goes_through_ready_routers_and_falls_back_to_engines() -> None:
    engines = [_engine("e1", True, "127.0.0.2"), _engine("e2", False, "127.0.0.3")]
    routers = [_router("r1", True, "127.0.0.8"), _router("r2", True, "127.0.0.9")]
    serving = {"e1", "e2", "r1", "r2"}
    assert load_targets(engines + routers, serving) == (
        [
            "http://127.0.0.8:8000",
            "http://127.0.0.9:8000",
        ],
        "router",
    )
    # A router whose process is down is no target, like a failing endpoint.
    assert load_targets(engines + routers, serving - {"r2"}) == (
        ["http://127.0.0.8:8000"],
        "router",
    )
    # No router ready (no router tier, or routers starting): straight at the ready engines.
    assert load_targets(engines, serving) == (["http://127.0.0.2:8000"], "engines")
    assert load_targets(engines + routers, {"e1", "e2"}) == (["http://127.0.0.2:8000"], "engines")
    assert load_targets([], set()) == ([], "engines")


def test_event_line_names_type_reason_and_message() -> None:
    event = {"type": "Normal", "reason": "Scaled", "message": "1 -> 2"}
    assert event_line(60.0, event) == "1970-01-01T00:01:00Z event Normal Scaled: 1 -> 2"


def test_the_demo_applies_its_example_as_simulated_without_touching_the_rest() -> None:
    manifest = {"kind": "LLMService", "spec": {"engine": {"profile": "p"}, "slo": {"ttftMs": 1}}}
    out = as_simulated(manifest)
    assert out["spec"]["engine"] == {"profile": "p", "simulated": True}
    assert out["spec"]["slo"] == {"ttftMs": 1}
    assert manifest["spec"]["engine"] == {"profile": "p"}  # the input is not modified
    assert as_simulated({"kind": "LLMService"})["spec"] == {"engine": {"simulated": True}}


def test_plain_lines_print_each_event_once_and_status_at_the_interval(
    capsys: pytest.CaptureFixture[str],
) -> None:
    view = View(events=[{"metadata": {"uid": "e1"}, "reason": "Scaled", "message": "1 -> 2"}])
    lines = PlainLines(view, LoadStats(), interval=3600.0)
    lines.show()
    lines.show()  # same event, status not yet due
    out = capsys.readouterr().out.splitlines()
    assert out[0].split(" ", 1)[1] == "event Normal Scaled: 1 -> 2"
    assert len(out) == 2 and " status replicas=" in out[1]


def test_status_line_shows_the_scale_to_zero_episode() -> None:
    service = {"status": {"replicas": 0, "activity": "Waking", "lastColdStartSeconds": 12.5}}
    stats = LoadStats(phase="burst", last_burst="30/30 answered in 12.9-14.1 s")
    line = status_line(0.0, service, [], stats, "router")
    assert line.endswith(
        " activity=Waking cold_start=12.5s phase=burst last_burst='30/30 answered in 12.9-14.1 s'"
    )
    assert "activity" not in status_line(0.0, None, [], LoadStats())  # only when known


def test_at_zero_means_zero_asked_for_and_no_engine_pod_left() -> None:
    zero = {"spec": {"replicas": 0}}
    router, engine = _router("r", True, "127.0.0.8"), _engine("e", False, "127.0.0.2")
    assert at_zero(zero, [router])
    assert not at_zero(zero, [router, engine])  # still terminating
    assert not at_zero({"spec": {"replicas": 1}}, [router])
    assert not at_zero(None, [])


def test_the_scale_to_zero_manifest_is_one_the_crd_accepts() -> None:
    from sloserve_dev.devcluster.demo import ZERO_IDLE_S, ZERO_STARTUP_DELAY_S, _example
    from sloserve_operator.api.v1alpha1 import LLMServiceSpec

    example = as_simulated(
        _example(Path(__file__).resolve().parents[2] / "docs/examples/llmservice.yaml")
    )
    out = with_scale_to_zero(example)
    spec = LLMServiceSpec.model_validate(out["spec"])  # the CEL rules are mirrored here
    assert spec.autoscaling.min_replicas == 0
    assert spec.autoscaling.scale_to_zero_after_s == ZERO_IDLE_S
    assert spec.engine.simulated_startup_delay_s == ZERO_STARTUP_DELAY_S
    assert spec.router.replicas >= 1
    assert example["spec"]["autoscaling"]["minReplicas"] == 1  # the input is not modified
    no_router = with_scale_to_zero({"spec": {"router": {"replicas": 0}}})
    assert no_router["spec"]["router"]["replicas"] == 1  # routers hold requests at zero
