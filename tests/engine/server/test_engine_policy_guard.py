"""A policy that raises fails one call or one request of the simulated engine, never the engine.

Real HTTP against the real simulated app; the fault is injected into the real
policy object (the only stand-in here), as the vLLM scheduler's own tests do
(``tests/engine/vllm/test_vllm_policy_errors.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from sloserve_engine.contract.knobs import Knobs
from sloserve_engine.contract.metrics import POLICY_ERRORS
from sloserve_engine.policy.guard import GuardedPolicy

ServeApp = Callable[[FastAPI], AbstractContextManager[str]]
SimAppFactory = Callable[..., FastAPI]


def _policy_errors(url: str, call: str) -> float:
    for family in text_string_to_metric_families(httpx.get(f"{url}/metrics").text):
        for s in family.samples:
            if s.name == POLICY_ERRORS and s.labels.get("call") == call:
                return float(s.value)
    raise AssertionError(f"{POLICY_ERRORS}{{call={call!r}}} not exported")


def _boom(*args: object, **kwargs: object) -> None:
    raise ZeroDivisionError("injected policy fault")


def test_plan_that_raises_falls_back_to_stock_for_the_step(
    serve_app: ServeApp, make_sim_app: SimAppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_sim_app(knobs=Knobs())
    guarded = app.state.engine.engine.policy
    assert isinstance(guarded, GuardedPolicy)
    monkeypatch.setattr(guarded.inner, "plan", _boom)
    with serve_app(app) as url:
        r = httpx.post(f"{url}/v1/completions", json={"prompt": "hi", "max_tokens": 4}, timeout=30)
        assert r.status_code == 200, r.text
        assert r.json()["usage"]["completion_tokens"] == 4
        assert httpx.get(f"{url}/sloserve/health").status_code == 200
        assert _policy_errors(url, "plan") >= 1


def test_arrival_that_raises_fails_that_request_only(
    serve_app: ServeApp, make_sim_app: SimAppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_sim_app(knobs=Knobs())
    inner = app.state.engine.engine.policy.inner
    real_arrival = inner.on_arrival
    with serve_app(app) as url:
        monkeypatch.setattr(inner, "on_arrival", _boom)
        bad = httpx.post(f"{url}/v1/completions", json={"prompt": "hi", "max_tokens": 2})
        assert bad.status_code == 500
        assert "injected policy fault" in bad.json()["error"]["message"]
        assert _policy_errors(url, "on_arrival") == 1
        monkeypatch.setattr(inner, "on_arrival", real_arrival)
        ok = httpx.post(f"{url}/v1/completions", json={"prompt": "hi", "max_tokens": 2}, timeout=30)
        assert ok.status_code == 200, ok.text
        health = httpx.get(f"{url}/sloserve/health")
        assert health.status_code == 200 and health.json()["openRequests"] == 0


def test_start_deadline_that_raises_publishes_the_class_blind_state(
    serve_app: ServeApp, make_sim_app: SimAppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_sim_app(knobs=Knobs())
    guarded = app.state.engine.engine.policy
    assert guarded.start_deadline(0.0) is not None  # sloserve orders by start deadline
    monkeypatch.setattr(guarded.inner, "start_deadline", _boom)
    with serve_app(app) as url:
        r = httpx.post(f"{url}/v1/completions", json={"prompt": "hi", "max_tokens": 4}, timeout=30)
        assert r.status_code == 200, r.text
        state = httpx.get(f"{url}/sloserve/state")
        assert state.status_code == 200 and state.json()["queueByStart"] == []
        assert _policy_errors(url, "start_deadline") >= 1
