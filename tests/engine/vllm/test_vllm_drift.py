"""Drift guard: the vLLM source the adapter builds on is exactly 0.26.0's."""

from __future__ import annotations

import pytest

vllm = pytest.importorskip("vllm", reason="vLLM 0.26.0 (the [engine] extra) is not installed")

from sloserve_engine.vllm.drift import RELIED_ON, VLLM_VERSION, drifted, source_sha256  # noqa: E402

pytestmark = pytest.mark.vllm


def test_installed_vllm_is_the_pinned_version() -> None:
    assert vllm.__version__ == VLLM_VERSION


def test_relied_on_vllm_source_is_unchanged() -> None:
    assert "vllm.v1.core.sched.scheduler:Scheduler.schedule" in RELIED_ON
    assert drifted() == {}, "re-read these methods, re-run the exactness test, update drift.py"


def test_hash_detects_a_different_method() -> None:
    schedule = RELIED_ON["vllm.v1.core.sched.scheduler:Scheduler.schedule"]
    assert source_sha256("vllm.v1.core.sched.scheduler:Scheduler.add_request") != schedule
