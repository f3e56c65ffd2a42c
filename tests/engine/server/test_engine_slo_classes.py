"""SLO classes are declared in the knobs; every other name is ``other`` (issue 12 item 2).

2,000 requests with distinct classes once grew ``/metrics`` from 13 KB to 11.9 MB.
Now the ``slo_class`` label has at most ``MAX_SLO_CLASSES`` + 2 values (the
declared classes, the default class, ``other``), checked with real
prometheus_client through the metrics object (10,000 requests) and over real
HTTP against the simulated engine.
"""

from __future__ import annotations

import asyncio
import random
import string
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError

from sloserve_engine.contract.knobs import Knobs, SLODefaults
from sloserve_engine.contract.slo import MAX_SLO_CLASSES, OTHER_SLO_CLASS, SLO
from sloserve_engine.policy.views import EngineSnapshot, RequestView
from sloserve_engine.telemetry.attainment import Outcome
from sloserve_engine.telemetry.metrics import EngineMetrics, FinishedRequest

SERIES_PER_CLASS = 44
"""Samples one class adds: queue_length 2, requests_finished 2 (+2 created), requests 4
(+4 created), and a TTFT and a TBT histogram of 12 buckets + inf + sum + count + created."""
SERIES_BOUND = (MAX_SLO_CLASSES + 2) * SERIES_PER_CLASS + 100
"""The stated bound on ``/metrics`` samples of one engine, for any traffic: 892 (the
class-free families take 77)."""


def _random_class(rng: random.Random) -> str:
    return "".join(rng.choices(string.ascii_letters, k=rng.randint(1, 63)))


def _view(rid: str, slo: SLO) -> RequestView:
    return RequestView(rid, 0.0, 10, 1, 11, 1, slo, 10, 20, 1000, first_token_time=0.1)


def _samples(text: str) -> list[tuple[str, dict[str, str]]]:
    return [(s.name, s.labels) for fam in text_string_to_metric_families(text) for s in fam.samples]


def test_ten_thousand_random_classes_stay_within_the_series_bound() -> None:
    """Pure metrics path (real prometheus_client), all three report calls, 10,000 requests."""
    rng = random.Random(12)
    registry = CollectorRegistry()
    declared = ("interactive", "standard", "batch")
    m = EngineMetrics(registry, slo_classes=declared, mode="simulated")
    for i in range(10_000):
        name = rng.choice([*declared, _random_class(rng)])
        slo = SLO(slo_class=name, ttft_ms=500, tbt_ms=50)
        if i % 50 == 0:
            snapshot = EngineSnapshot(float(i), 16, 1000, 900, 8192, 256, (_view("r", slo),), ())
            m.record_step(snapshot, None, {}, now=float(i))
        if i % 3:
            m.record_finish(
                FinishedRequest(slo, i, i + 0.1, i + 1.0, 10, 10, max_gap_s=0.1), now=float(i + 1)
            )
        else:
            m.record_ended(name, rng.choice([Outcome.ABORTED, Outcome.REJECTED]), now=float(i))
    samples = _samples(generate_latest(registry).decode())
    classes = {labels["slo_class"] for _, labels in samples if "slo_class" in labels}
    assert classes == {*declared, OTHER_SLO_CLASS}
    assert len(samples) <= SERIES_BOUND
    other = registry.get_sample_value(
        "sloserve_requests_total", {"slo_class": OTHER_SLO_CLASS, "outcome": "finished"}
    )
    assert other is not None and other > 1000  # a quarter of 2/3 of 10,000


def test_undeclared_classes_share_other_over_http(base: str) -> None:
    """200 requests with random classes (1-63 characters) through the simulated engine."""
    rng = random.Random(7)
    names = [_random_class(rng) for _ in range(200)]

    async def run() -> list[int]:
        async with httpx.AsyncClient(base_url=base, timeout=60) as client:

            async def one(name: str) -> int:
                body = {"prompt": [1] * 4, "max_tokens": 2, "vllm_xargs": {"slo_class": name}}
                return (await client.post("/v1/completions", json=body)).status_code

            return await asyncio.gather(*(one(n) for n in names))

    assert set(asyncio.run(run())) == {200}
    text = httpx.get(f"{base}/metrics").text
    classes = {labels["slo_class"] for _, labels in _samples(text) if "slo_class" in labels}
    assert classes == {"interactive", "standard", "batch", OTHER_SLO_CLASS}
    counted = sum(
        value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
        if s.name == "sloserve_requests_total" and s.labels["outcome"] == "finished"
        for value in (s.value,)
    )
    assert counted == 200


def test_a_class_longer_than_63_characters_is_refused(base: str) -> None:
    body = {"prompt": "x", "max_tokens": 1, "vllm_xargs": {"slo_class": "c" * 200}}
    r = httpx.post(f"{base}/v1/completions", json=body)
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "vllm_xargs.slo_class"


def test_declaring_classes_live_adds_their_series_and_drops_the_old(
    base: str, token_file: Path
) -> None:
    auth = {"Authorization": f"Bearer {token_file.read_text().strip()}"}
    doc = {"policy": "vllm", "sloDefaults": {"sloClasses": ["gold", "silver"]}}
    assert httpx.put(f"{base}/sloserve/knobs", json=doc, headers=auth).status_code == 200
    body = {"prompt": [1] * 4, "max_tokens": 2, "vllm_xargs": {"slo_class": "gold"}}
    assert httpx.post(f"{base}/v1/completions", json=body, timeout=30).status_code == 200
    text = httpx.get(f"{base}/metrics").text
    classes = {labels["slo_class"] for _, labels in _samples(text) if "slo_class" in labels}
    assert classes == {"gold", "silver", "standard", OTHER_SLO_CLASS}  # standard: the default
    gold = [
        s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
        if s.name == "sloserve_requests_total"
        and s.labels == {"slo_class": "gold", "outcome": "finished"}
    ]
    assert gold == [1.0]


@pytest.mark.parametrize(
    ("classes", "message"),
    [
        ([f"c{i}" for i in range(MAX_SLO_CLASSES + 1)], "at most 16"),
        (["a", "a"], "must not repeat"),
        (["other"], "reserved"),
        ([""], "at least 1"),
        (["x" * 64], "at most 63"),
    ],
)
def test_declared_classes_are_bounded_and_distinct(classes: list[str], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Knobs.model_validate({"sloDefaults": {"sloClasses": classes}})


def test_the_default_class_always_has_its_own_label() -> None:
    assert SLODefaults(slo_class="gold", slo_classes=[]).declared_classes() == {"gold"}
