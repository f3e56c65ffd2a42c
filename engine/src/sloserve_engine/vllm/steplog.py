"""Per-step CSV log of a vLLM scheduler, in the format ``sloserve bench fit`` reads.

Set ``SLOSERVE_STEP_LOG=<csv path>`` in the engine core's environment; every
scheduler class of this package (stock timing and sloserve, sync and async)
then appends one row per non-empty step. The columns are the baseline's, so
the simulator's cost-model fit reads both, plus ``sched_s``: host time spent
inside ``schedule()`` and ``update_from_output()`` for that step, which is what
the policy adds on top of vLLM, and the plan the step ran under (``plan_budget``,
``plan_chunk_cap``, ``plan_admits``), so a GPU run shows when a policy held
tokens or requests back (stock: vLLM's own budget, no cap, every waiting request).

``t_sched`` is when ``schedule()`` returned (the batch went to the model),
``t_update`` when ``update_from_output()`` was entered (its output came back);
both are ``time.perf_counter()``. Under asynchronous scheduling the next step
is scheduled before this one's output arrives, so rows wait in a FIFO.
"""

from __future__ import annotations

import csv
import os
import time
from collections import deque
from dataclasses import astuple, dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from vllm.v1.core.sched.output import SchedulerOutput
from vllm.v1.core.sched.scheduler import Scheduler
from vllm.v1.outputs import ModelRunnerOutput

from ..policy.costmodel import attention_pairs

STEP_LOG_ENV = "SLOSERVE_STEP_LOG"
"""Path of the step CSV; unset = no logging (the default, zero cost beyond one check)."""

COLUMNS = (
    "t_sched",
    "t_update",
    "n_reqs",
    "n_prefill_reqs",
    "prefill_tokens",
    "n_decode",
    "decode_ctx_sum",
    "prefill_ctx_sum",
    "kv_usage",
    "n_waiting",
    "n_running",
    "preempt_total",
    "sched_s",
    "plan_budget",
    "plan_chunk_cap",
    "plan_admits",
    "prefill_attn_sum",
)


@dataclass(slots=True)
class StepRow:
    """One row of the step log (column meanings: the GPU baseline's README)."""

    t_sched: float
    t_update: float
    n_reqs: int
    n_prefill_reqs: int
    prefill_tokens: int
    n_decode: int
    decode_ctx_sum: int
    prefill_ctx_sum: int
    kv_usage: float
    n_waiting: int
    n_running: int
    preempt_total: int
    sched_s: float
    plan_budget: int
    """Token budget of the step (the policy's, or vLLM's ``max_num_scheduled_tokens``)."""
    plan_chunk_cap: int
    """Largest prefill chunk the plan allowed (0: no cap)."""
    plan_admits: int
    """Waiting requests the plan let vLLM consider."""
    prefill_attn_sum: int
    """Attention pairs of the step's prefill chunks (cost model feature ``prefill_attn``):
    exact per step, where the other sums cannot tell how they split between requests."""

    def cells(self) -> list[str]:
        return [f"{v:.6f}" if isinstance(v, float) else str(v) for v in astuple(self)]


def step_row(sched: Scheduler, output: SchedulerOutput, preempt_total: int) -> StepRow:
    """The row of a step just scheduled (times filled in later)."""
    stats = getattr(sched, "sloserve_stats", None)
    plan = stats.last_plan if stats is not None else None
    n_waiting = len(sched.waiting) + len(sched.skipped_waiting)
    n_prefill = prefill_tokens = prefill_ctx = prefill_attn = n_decode = decode_ctx = 0
    for rid, n in output.num_scheduled_tokens.items():
        request = sched.requests[rid]
        context = request.num_computed_tokens - request.num_output_placeholders
        if n == 1 and request.num_output_tokens > 0 and not request.is_prefill_chunk:
            n_decode += 1
            decode_ctx += context
        else:
            n_prefill += 1
            prefill_tokens += n
            prefill_ctx += context
            prefill_attn += attention_pairs(n, context - n)
    return StepRow(
        t_sched=0.0,
        t_update=0.0,
        n_reqs=len(output.num_scheduled_tokens),
        n_prefill_reqs=n_prefill,
        prefill_tokens=prefill_tokens,
        n_decode=n_decode,
        decode_ctx_sum=decode_ctx,
        prefill_ctx_sum=prefill_ctx,
        kv_usage=sched.kv_cache_manager.usage,
        n_waiting=n_waiting,
        n_running=len(sched.running),
        preempt_total=preempt_total,
        sched_s=0.0,
        plan_budget=plan.token_budget if plan else sched.max_num_scheduled_tokens,
        plan_chunk_cap=plan.prefill_chunk_cap if plan else 0,
        plan_admits=len(plan.admit_order) if plan else n_waiting,
        prefill_attn_sum=prefill_attn,
    )


if TYPE_CHECKING:
    _Base = Scheduler
else:
    _Base = object


class StepLogMixin(_Base):
    """Adds the step log to any vLLM scheduler class (outermost, so policy time is included)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        raw = os.environ.get(STEP_LOG_ENV)
        self._steplog_file: IO[str] | None = None
        self._steplog_pending: deque[StepRow] = deque()
        self._steplog_preempted = 0
        if raw:
            path = Path(raw)
            new = not path.exists() or path.stat().st_size == 0
            self._steplog_file = path.open("a", buffering=1, newline="")
            self._steplog_writer = csv.writer(self._steplog_file)
            if new:
                self._steplog_writer.writerow(COLUMNS)

    def schedule(self, throttle_prefills: bool = False) -> SchedulerOutput:
        if self._steplog_file is None:
            return super().schedule(throttle_prefills)
        start = time.perf_counter()
        output = super().schedule(throttle_prefills)
        if output.total_num_scheduled_tokens > 0:
            self._steplog_preempted += len(output.preempted_req_ids or ())
            row = step_row(self, output, self._steplog_preempted)
            row.t_sched = time.perf_counter()
            row.sched_s = row.t_sched - start
            self._steplog_pending.append(row)
        return output

    def update_from_output(
        self, scheduler_output: SchedulerOutput, model_runner_output: ModelRunnerOutput
    ) -> Any:
        if self._steplog_file is None or scheduler_output.total_num_scheduled_tokens == 0:
            return super().update_from_output(scheduler_output, model_runner_output)
        start = time.perf_counter()
        result = super().update_from_output(scheduler_output, model_runner_output)
        row = self._steplog_pending.popleft()
        row.t_update = start
        row.sched_s += time.perf_counter() - start
        self._steplog_writer.writerow(row.cells())
        return result
