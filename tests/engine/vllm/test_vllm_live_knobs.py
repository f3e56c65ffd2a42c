"""Knob documents change a running scheduler at the very next step (file poll and RPC)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

pytest.importorskip("vllm", reason="vLLM 0.26.0 (the [engine] extra) is not installed")

from vllm.v1.engine.core import EngineCore
from vllm_adapter_helpers import Arrival, assert_all_done, make_engine

from sloserve_engine.contract.knobs import InvalidKnobsError, Knobs
from sloserve_engine.policy.views import EngineSnapshot, StepPlan
from sloserve_engine.policy.vllm_fcfs import VllmFcfsPolicy
from sloserve_engine.vllm.scheduler import SLOScheduler, SLOSyncScheduler

pytestmark = pytest.mark.vllm


class ChunkFromKnobs(VllmFcfsPolicy):
    """Stock order, but prefill chunks capped by the ``chunkMaxTokens`` knob."""

    def plan(self, snapshot: EngineSnapshot) -> StepPlan:
        base = super().plan(snapshot)
        return StepPlan(
            base.running_order,
            base.admit_order,
            base.token_budget,
            prefill_chunk_cap=self.knobs.chunk_max_tokens,
        )


def write_knobs(path: Path, doc: dict[str, object] | str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    tmp.replace(path)


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async-depth2"])
def test_knobs_file_change_applies_at_the_next_step(
    tiny_model_dir: Path, tmp_path: Path, asynchronous: bool
) -> None:
    knobs_file = tmp_path / "knobs.json"
    write_knobs(knobs_file, {"policy": "vllm"})
    cls = SLOScheduler if asynchronous else SLOSyncScheduler
    engine = make_engine(
        cls, tiny_model_dir, asynchronous=asynchronous, sloserve={"knobs_file": str(knobs_file)}
    )
    sched = engine.scheduler
    sched.set_policy(ChunkFromKnobs(Knobs(policy="vllm")))
    small = {"policy": "vllm", "chunkMinTokens": 8, "chunkMaxTokens": 16}
    seen: dict[int, tuple[str, int]] = {}

    def edit(step: int) -> None:
        seen[step] = (sched.sloserve_policy.name, sched.sloserve_stats.knobs_revision)
        if step == 2:
            write_knobs(knobs_file, small)
        if step == 4:
            write_knobs(knobs_file, "{not json")
        if step == 6:
            write_knobs(knobs_file, {"policy": "sloserve"})

    arrivals = [Arrival("A", 300, 3), Arrival("B", 20, 40)]
    engine.run(arrivals, before_step=edit)
    records = engine.driver.records
    assert records[1].num_scheduled_tokens["A"] == 64, "before the change: full chunks"
    assert records[2].num_scheduled_tokens["A"] == 16, "the step after the write uses the knob"
    assert seen[3][1] == Knobs.model_validate(small).revision()
    applied = json.loads(knobs_file.with_name("knobs.json.applied").read_text())
    assert seen[5][1] == seen[3][1], "an invalid document leaves the knobs in force"
    assert sched.sloserve_stats.knobs_errors == 1
    assert seen[6][0] == "vllm" and seen[7][0] == "sloserve", "policy swapped at the next step"
    assert applied == {
        "revision": Knobs(policy="sloserve").revision(),
        "knobs": json.loads(Knobs(policy="sloserve").model_dump_json(by_alias=True)),
    }
    assert sched.sloserve_metrics.knobs_revision._value.get() == Knobs(policy="sloserve").revision()
    assert_all_done(engine.driver, engine.spec, arrivals)


def test_utility_rpc_sets_and_reads_knobs(tiny_model_dir: Path) -> None:
    engine = make_engine(
        SLOSyncScheduler, tiny_model_dir, asynchronous=False, knobs={"policy": "vllm"}
    )
    core = SimpleNamespace(scheduler=engine.scheduler)
    doc = {"policy": "vllm", "reservationRatio": 0.2}
    state = EngineCore.sloserve_set_knobs(core, doc)  # type: ignore[attr-defined]
    assert state["revision"] == Knobs.model_validate(doc).revision()
    assert engine.scheduler.sloserve_policy.knobs.reservation_ratio == 0.2
    assert EngineCore.sloserve_get_knobs(core) == state  # type: ignore[attr-defined]
    with pytest.raises(InvalidKnobsError, match="reservationRatio"):
        EngineCore.sloserve_set_knobs(core, {"reservationRatio": 2})  # type: ignore[attr-defined]
    assert EngineCore.sloserve_get_knobs(core) == state  # type: ignore[attr-defined]
