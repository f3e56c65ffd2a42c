"""The pieces of vLLM's EngineCore the adapter plugs into, exercised with their real code.

No GPU means no full EngineCore here, so each hand-over is driven through the
real vLLM function that performs it: ``--scheduler-cls`` resolution and the
engine core's utility-RPC dispatch (``EngineCoreProc._handle_client_request``).
"""

from __future__ import annotations

import queue
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("vllm", reason="vLLM 0.26.0 (the [engine] extra) is not installed")

from vllm.config import SchedulerConfig
from vllm.v1.engine import EngineCoreRequestType
from vllm.v1.engine.core import EngineCoreProc, EngineShutdownState
from vllm_adapter_helpers import make_engine

from sloserve_engine.contract.knobs import Knobs
from sloserve_engine.vllm.scheduler import SLOScheduler, SLOSyncScheduler

pytestmark = pytest.mark.vllm


def test_scheduler_cls_string_resolves_to_the_async_adapter() -> None:
    config = SchedulerConfig(
        max_model_len=512,
        is_encoder_decoder=False,
        scheduler_cls="sloserve_engine.vllm.scheduler.SLOScheduler",
    )
    assert config.get_scheduler_cls() is SLOScheduler


def utility_call(core: Any, call_id: int, method: str, *args: Any) -> Any:
    """Send one UTILITY request through the engine core's own dispatch; return its output."""
    core._handle_client_request(EngineCoreRequestType.UTILITY, (0, call_id, method, args))
    client, outputs = core.output_queue.get_nowait()
    assert client == 0
    return outputs.utility_output


def test_utility_rpc_through_engine_core_dispatch(tiny_model_dir: Path) -> None:
    engine = make_engine(
        SLOSyncScheduler, tiny_model_dir, asynchronous=False, knobs={"policy": "vllm"}
    )
    core = object.__new__(EngineCoreProc)  # only the state the UTILITY branch reads
    core.scheduler = engine.scheduler
    core.shutdown_state = EngineShutdownState.RUNNING
    core.output_queue = queue.Queue()

    doc = Knobs(policy="vllm", chunk_max_tokens=256).model_dump(mode="json", by_alias=True)
    out = utility_call(core, 1, "sloserve_set_knobs", doc)
    assert out.call_id == 1 and out.failure_message is None
    assert out.result.result == {"revision": Knobs.model_validate(doc).revision(), "knobs": doc}
    assert engine.scheduler.sloserve_policy.knobs.chunk_max_tokens == 256

    out = utility_call(core, 2, "sloserve_get_knobs")
    assert out.result.result["revision"] == Knobs.model_validate(doc).revision()

    out = utility_call(core, 3, "sloserve_set_knobs", {"chunkMaxTokens": 0})
    assert out.result is None and "chunkMaxTokens" in out.failure_message
    assert engine.scheduler.sloserve_policy.knobs.chunk_max_tokens == 256
