"""Real mode: the scheduler publishes the router-facing snapshot the server's
``GET /sloserve/state`` answers from (a file: the scheduler runs in vLLM's engine core)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("vllm", reason="vLLM 0.26.0 (the [engine] extra) is not installed")

from vllm_adapter_helpers import make_engine, pressure_workload

from sloserve_engine.contract.pod import STATE_PATH_ENV
from sloserve_engine.router.snapshot import snapshot_from_json
from sloserve_engine.server.state import StateFile
from sloserve_engine.vllm.scheduler import SLOScheduler

pytestmark = pytest.mark.vllm


def test_scheduler_writes_the_snapshot_the_server_serves(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "state.json"
    monkeypatch.setenv(STATE_PATH_ENV, str(path))
    engine = make_engine(SLOScheduler, tiny_model_dir, asynchronous=True, knobs={"policy": "vllm"})
    engine.scheduler.sloserve_metrics_interval_s = 0.0  # report every step
    seen: list[tuple[int, int]] = []

    def sample(step: int) -> None:
        if path.exists():
            snap = snapshot_from_json(json.loads(path.read_text()))
            seen.append((snap.running, snap.waiting))

    engine.run(pressure_workload(), before_step=sample)
    assert seen and max(r for r, _ in seen) > 0  # it saw requests running
    final = StateFile(path)()
    assert final is not None
    assert final.kv_total_tokens > 0 and final.kv_free_tokens <= final.kv_total_tokens
    assert final.predicted_queue_delay_s >= 0.0
    assert final.kv_freed_tokens_per_s is not None and final.kv_freed_tokens_per_s >= 0.0
