"""``status.engineMode`` and the ``EngineModeDiffers`` Event: what the engines say they run,
against what the spec asks for (pure rules; the e2e is tests/helm/test_helm_devcluster.py)."""

from __future__ import annotations

import datetime as dt

import pytest

from sloserve_operator.api import v1alpha1 as api
from sloserve_operator.autoscaler.decision import (
    History,
    Observation,
    PodSample,
    ScalingPolicy,
    decide,
)
from sloserve_operator.autoscaler.engine_mode import mismatch, observed_mode
from sloserve_operator.autoscaler.kube import engine_mode_event, status_due, status_patch
from sloserve_operator.autoscaler.loop import Evaluation, ReplicaState
from sloserve_operator.autoscaler.metrics_source import Scrape

NOW = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
BODY = {"metadata": {"name": "chat", "namespace": "ns", "uid": "u-1"}}


@pytest.mark.parametrize(
    ("modes", "expected"),
    [
        ([], None),
        (["simulated", "simulated"], "simulated"),
        (["vllm"], "vllm"),
        (["vllm", "simulated"], "mixed"),
        (["vllm", None], "mixed"),
        ([None, None], "unknown"),
        (["tpu"], "unknown"),
    ],
)
def test_observed_mode(modes: list[str | None], expected: str | None) -> None:
    assert observed_mode(modes) == expected


def test_mismatch_only_when_the_pods_contradict_the_spec() -> None:
    assert mismatch(True, ["simulated"]) is None
    assert mismatch(False, ["vllm", "vllm"]) is None
    assert mismatch(False, []) is None  # nobody answered: nothing to say
    assert mismatch(False, [None]) is None  # an engine without the metric: unknown, not wrong
    message = mismatch(False, ["simulated", "simulated"])
    assert message is not None
    assert message.startswith("engines run simulated although spec.engine.simulated is false")
    assert "2 simulated of 2 ready engine pod(s)" in message
    assert "process kubelet" in message
    mixed = mismatch(True, ["simulated", "vllm"])
    assert mixed is not None and "engines run mixed" in mixed and "1 vllm" in mixed


def _evaluation(*modes: str | None) -> Evaluation:
    samples = tuple(PodSample(f"p{i}", 0.5, None, 0.0, mode=m) for i, m in enumerate(modes))
    replicas = max(1, len(samples))
    observation = Observation(100.0, replicas, len(samples), samples=samples)
    decision = decide(ScalingPolicy(), observation, History())
    return Evaluation(ReplicaState("ns", "chat", replicas, ()), Scrape(samples), decision)


def test_status_reports_the_observed_mode_and_keeps_it_while_nobody_answers() -> None:
    simulated = status_patch(_evaluation("simulated"), NOW)
    assert simulated["status"]["engineMode"] == "simulated"
    api.LLMServiceStatus.model_validate(simulated["status"])
    nobody = status_patch(_evaluation(), NOW)
    assert "engineMode" not in nobody["status"]  # a merge patch without it keeps the last one
    earlier = {"status": {**nobody["status"], "engineMode": "simulated"}}
    assert not status_due(nobody, earlier, 1.0)
    assert status_due(status_patch(_evaluation("vllm"), NOW), simulated, 1.0)
    assert not status_due(status_patch(_evaluation("simulated"), NOW), simulated, 1.0)


def test_event_once_per_change_of_the_observed_mode() -> None:
    simulated = _evaluation("simulated", "simulated")
    event = engine_mode_event(BODY, simulated, False, None, NOW)
    assert event is not None
    assert (event["type"], event["reason"]) == ("Normal", "EngineModeDiffers")
    assert event["message"].startswith("engines run simulated although spec.engine.simulated")
    assert engine_mode_event(BODY, simulated, False, "simulated", NOW) is None  # said already
    assert engine_mode_event(BODY, simulated, True, None, NOW) is None  # as the spec says
    assert engine_mode_event(BODY, _evaluation("vllm", "simulated"), False, "simulated", NOW)
