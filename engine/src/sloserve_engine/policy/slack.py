"""SLO slack: how long a request can still wait without missing its SLO.

The attainment rule is TTFT ≤ target and *mean* time per output token ≤ target.
With decode steps of ~10 ms against a 100 ms TPOT target, a request that has
been decoding banks time it could spend waiting; a request that has not
started has only its TTFT budget. One deadline ("latest start") expresses both,
so new and preempted requests can be ordered on one scale (EDF) and running
requests can be ranked as preemption victims by how much they can afford it.
"""

from __future__ import annotations

from .costmodel import StepCostModel
from .views import RequestView


def latest_start(
    r: RequestView, model: StepCostModel, token_step_s: float, lead_s: float = 0.0
) -> float:
    """Latest time ``r`` can (re)start and still meet its SLO, on the executor clock.

    Before the first token: the TTFT deadline minus the prefill still to do and
    minus ``lead_s``, the time between a plan and the end of the step it plans
    that the prefill alone does not account for (with vLLM's asynchronous batch
    queue a planned batch starts after the one in flight, and its step carries
    other requests' tokens too).
    After it: the time at which the mean TPOT over the predicted output would
    reach the target if the remaining tokens then come every ``token_step_s``,
    minus the cost of restoring its KV (recompute; swap when cheaper).
    """
    if r.first_token_time is None:
        return r.arrival_time + r.slo.ttft_s - model.prefill_s(r.remaining_tokens) - lead_s
    total = max(r.predicted_output, r.output_tokens + 1)
    left = total - r.output_tokens
    restore = min(model.prefill_s(r.computed_tokens), model.swap_s(r.computed_tokens))
    return r.first_token_time + r.slo.tbt_s * (total - 1) - left * token_step_s - restore


class TokenInterval:
    """EWMA of the time between a running request's tokens, learned from plan timestamps.

    Consecutive ``plan()`` calls are one step apart while requests run, so their
    spacing is the step time the engine actually achieves (prefill-heavy and
    decode-only steps mixed), which no per-step cost estimate captures. Only
    gaps between two plans that both had running requests count: anything
    else may contain idle time.
    """

    __slots__ = ("_last", "alpha", "value")

    def __init__(self, initial_s: float = 0.02, alpha: float = 0.02) -> None:
        self.value = initial_s
        self.alpha = alpha
        self._last: float | None = None

    def observe(self, now: float, busy: bool) -> None:
        last = self._last
        self._last = now if busy else None
        if busy and last is not None and now > last:
            self.value += self.alpha * (now - last - self.value)
