"""Queue orders: which waiting request is admitted first, which running request is served first.

Running order (EconoServe's separate PT/GT queues, applied to vLLM's single
running list): decodes first, prefill chunks after, so a long chunk can never
take the budget that running decodes need; the victim order (from the end)
follows from sorting each part by a victim key.

Waiting order, one key function per rule:

- ``fcfs``: vLLM's queue order.
- ``ecoserve`` (EconoServe "Ordering"): requests that already hold KV (swapped)
  or progress (preempted) first, then urgent ones (slack below their own
  prefill time), then shortest prompt.
- ``deadline`` (AccelGen C2 deadline awareness, ours): preempted/swapped first,
  then earliest TTFT deadline, where a request that can no longer meet its
  deadline is ordered as if its deadline were ``hopeless_delay_s`` later; that
  delay is the ageing: a hopeless request waits behind at most that much newer
  feasible work, so nothing starves.
- ``class``: like ``deadline`` but the tightest TBT class first (AccelGen C2
  prioritisation); a request that has waited ``class_age_s`` joins the tightest class.
- ``slack`` (ours): a preempted request that has already streamed tokens
  first (its user watches a frozen stream; vLLM, too, resumes victims before
  new work), then EDF on :func:`.slack.latest_start` with the same hopeless
  ageing. Ordering streamed victims *into* the EDF by their banked TPOT slack
  attained the mean-TPOT SLO while freezing streams for seconds (issue 5).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from .costmodel import StepCostModel
from .slack import latest_start
from .views import RequestView

AdmitKey = Callable[[RequestView], tuple[float, ...]]
StartDeadline = Callable[[RequestView], float]
"""A waiting request's start deadline in the engine's admission order (earlier goes first)."""


class AdmitRule(StrEnum):
    """Waiting-queue order (the module docstring describes each)."""

    FCFS = "fcfs"
    ECOSERVE = "ecoserve"
    DEADLINE = "deadline"
    CLASS = "class"
    SLACK = "slack"


@dataclass(frozen=True, slots=True)
class OrderingConfig:
    """Parameters of the waiting-queue order."""

    admit_rule: AdmitRule = AdmitRule.DEADLINE
    """Sort rule for the waiting queue (module docstring)."""
    hopeless_delay_s: float = 5.0
    """Ageing of hopeless requests: ordered as if their TTFT deadline were this much later."""
    hopeless_load_exponent: float = 0.0
    """Scale the hopeless delay by ``min(load, 1)`` to this power (:func:`hopeless_delay`);
    0 = constant delay."""
    start_lead_steps: float = 0.0
    """``slack`` rule: a new request must start this many token intervals before its
    prefill-only deadline (:func:`.slack.latest_start`): the async batch queue."""
    class_age_s: float = 5.0
    """Wait after which a request of a loose TBT class is served with the tightest class."""


def resumed_rank(r: RequestView) -> float:
    """0 for a request that has KV in host memory or output already, else 1 (goes later)."""
    return 0.0 if (r.swapped_tokens > 0 or r.output_tokens > 0) else 1.0


def admit_key(
    config: OrderingConfig,
    now: float,
    model: StepCostModel,
    token_step_s: float,
    load: float = 1.0,
) -> AdmitKey | None:
    """The sort key of the configured rule (smaller first), or ``None`` for queue order.

    ``load`` is the sustained arrival rate over the engine's capacity; see
    :func:`hopeless_delay`.
    """
    rule = config.admit_rule
    if rule is AdmitRule.FCFS:
        return None
    if rule is AdmitRule.ECOSERVE:

        def eco(r: RequestView) -> tuple[float, ...]:
            prefill = model.prefill_s(r.prompt_tokens)
            slack = r.arrival_time + r.slo.ttft_s - now - prefill
            urgent = 0.0 if slack < prefill else 1.0
            return (resumed_rank(r), -float(r.swapped_tokens), urgent, float(r.prompt_tokens))

        return eco

    if rule is AdmitRule.SLACK:
        due = slack_due(config, now, model, token_step_s, load)

        def by_slack(r: RequestView) -> tuple[float, ...]:
            return (0.0 if r.output_tokens > 0 else 1.0, due(r), r.arrival_time)

        return by_slack

    delay = hopeless_delay(config, load)
    class_age = config.class_age_s
    by_class = rule is AdmitRule.CLASS

    def deadline(r: RequestView) -> tuple[float, ...]:
        due = r.arrival_time + r.slo.ttft_s
        if now + model.prefill_s(r.remaining_tokens) > due:
            due += delay
        band = r.slo.tbt_s if by_class and now - r.arrival_time < class_age else 0.0
        return (resumed_rank(r), band, due, r.arrival_time)

    return deadline


def slack_due(
    config: OrderingConfig, now: float, model: StepCostModel, token_step_s: float, load: float
) -> Callable[[RequestView], float]:
    """The ``slack`` rule's deadline of a waiting request: its :func:`.slack.latest_start`,
    ``hopeless_delay`` later for a request that has not streamed and can no longer start in
    time (a streamed victim keeps its own: it goes first anyway)."""
    lead = config.start_lead_steps * token_step_s
    delay = hopeless_delay(config, load)

    def due(r: RequestView) -> float:
        start = latest_start(r, model, token_step_s, lead)
        if r.output_tokens == 0 and start < now:
            start += delay
        return start

    return due


def start_order(
    config: OrderingConfig, now: float, model: StepCostModel, token_step_s: float, load: float
) -> StartDeadline | None:
    """Each waiting request's place in the admission order as a start deadline, for the rule
    that orders by one (``slack``; ``None`` for any other: a new request waits behind all).

    A new request with latest start ``t`` goes after every waiting request whose deadline is
    at or before ``t`` (ties: earlier arrival first) and before the rest. A streamed victim
    goes before everything new (``-inf``), as :func:`admit_key` orders it.
    """
    if config.admit_rule is not AdmitRule.SLACK:
        return None
    due = slack_due(config, now, model, token_step_s, load)

    def deadline(r: RequestView) -> float:
        return -math.inf if r.output_tokens > 0 else due(r)

    return deadline


def hopeless_delay(config: OrderingConfig, load: float) -> float:
    """How far back a hopeless request goes: ``hopeless_delay_s × min(load, 1)^exponent``.

    Deferring a request that can no longer meet its TTFT pays only while the
    overload lasts longer than a TTFT: then the requests that pass it can still
    attain. In a burst the backlog drains within seconds anyway, and a full
    deferral only moves the burst's tail onto the deferred request (issue 14:
    on azure-code at 2.5 req/s the GPU's p99 TTFT was 3.95 s vs stock's 2.16 s,
    every request of the tail deferred behind the whole burst). ``load`` is the
    sustained arrival rate (30 s EWMA) over the engine's capacity
    (:mod:`.capacity`); exponent 0 is a constant delay.
    """
    scale: float = min(max(load, 0.0), 1.0) ** config.hopeless_load_exponent
    return config.hopeless_delay_s * scale


def order_waiting(
    waiting: Sequence[RequestView], key: AdmitKey | None, limit: int
) -> list[RequestView]:
    """The first ``limit`` waiting requests by ``key`` (O(n log limit))."""
    if limit <= 0:
        return []
    if key is None:
        return list(waiting[:limit])
    if limit >= len(waiting):
        return sorted(waiting, key=key)
    return heapq.nsmallest(limit, waiting, key=key)


def split_phases(
    running: Sequence[RequestView],
) -> tuple[list[RequestView], list[RequestView]]:
    """(decodes, prefills) in running order; ``RequestView.in_prefill`` inlined (hot path)."""
    decodes: list[RequestView] = []
    prefills: list[RequestView] = []
    for r in running:
        out = r.output_tokens
        if out == 0 or r.computed_tokens < r.prompt_tokens + out - 1:
            prefills.append(r)
        else:
            decodes.append(r)
    return decodes, prefills


def order_running(
    running: Sequence[RequestView],
    decodes: list[RequestView],
    prefills: list[RequestView],
    victim_key: Callable[[RequestView], tuple[float, ...]] | None,
    decodes_first: bool,
) -> tuple[str, ...]:
    """Service order; victims come from the end (highest ``victim_key`` last).

    ``decodes``/``prefills`` are :func:`split_phases` of ``running`` (sorted in place).
    """
    if not decodes_first:
        ordered: Sequence[RequestView] = (
            running if victim_key is None else sorted(running, key=victim_key)
        )
        return tuple([r.request_id for r in ordered])
    if victim_key is not None:
        decodes.sort(key=victim_key)
        prefills.sort(key=victim_key)
    return tuple([r.request_id for r in decodes] + [r.request_id for r in prefills])
