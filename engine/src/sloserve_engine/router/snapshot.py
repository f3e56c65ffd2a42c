"""What an engine publishes for placement (≥ 10 Hz) and how an engine computes it.

Routers never see request views: an engine condenses its scheduler state into
one small :class:`EngineSnapshot` so that polling 8 engines at 10 Hz costs
little and the router's decision is O(engines). The engine computes it with
:func:`snapshot_from_view` from the same ``policy.views.EngineSnapshot`` its
policy plans with (simulated engine, vLLM adapter and the cluster simulator
alike), so what the router predicts comes from the engine's own predictor.

The wire form is camelCase JSON (:meth:`EngineSnapshot.to_json`,
:func:`snapshot_from_json`), like the knob document.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

from ..policy.costmodel import StepCostModel
from ..policy.views import EngineSnapshot as EngineView


@dataclass(frozen=True, slots=True)
class EngineSnapshot:
    """One engine's load as the router sees it (times on the engine's clock)."""

    engine_id: str
    region: str
    """Shield region of the engine (SROLE: a group of engines one shield guards)."""
    kv_total_tokens: int
    kv_free_tokens: int
    """Unallocated KV now."""
    kv_reserved_tokens: int
    """KV already promised but not allocated: prompts + predicted outputs of waiting requests
    and the predicted growth of running ones. Free minus reserved is what a new request may
    count on."""
    waiting: int
    running: int
    waiting_prompt_tokens: int
    """Prefill tokens queued ahead of a new request (waiting prompts and unfinished chunks)."""
    predicted_queue_delay_s: float
    """Engine's estimate of how long a request arriving now waits before its prefill starts."""
    kv_drain_tokens_per_s: float
    """Rate at which running requests are predicted to free KV (tokens/s); lets the router
    price waiting for KV instead of treating a full cache as unusable."""
    max_batched_tokens: int
    """Token budget per step (prefill throughput per step)."""
    observed_at: float
    """When the engine took the snapshot (s); ``now - observed_at`` is the state's age."""

    def __post_init__(self) -> None:
        if not self.engine_id:
            raise ValueError("engineId must not be empty")
        for name in (
            "kv_total_tokens",
            "kv_free_tokens",
            "kv_reserved_tokens",
            "waiting",
            "running",
            "waiting_prompt_tokens",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{_camel(name)} must be >= 0")
        if self.kv_free_tokens > self.kv_total_tokens:
            raise ValueError("kvFreeTokens must not exceed kvTotalTokens")
        if self.max_batched_tokens < 1:
            raise ValueError("maxBatchedTokens must be >= 1")
        for name in ("predicted_queue_delay_s", "kv_drain_tokens_per_s", "observed_at"):
            value = getattr(self, name)
            if not math.isfinite(value) or (name != "observed_at" and value < 0):
                raise ValueError(f"{_camel(name)} must be a finite number >= 0")

    @property
    def kv_headroom_tokens(self) -> int:
        """KV a new request can count on now: free minus what is already promised."""
        return max(self.kv_free_tokens - self.kv_reserved_tokens, 0)

    @property
    def kv_usage(self) -> float:
        """Share of KV allocated or promised (least-KV's load signal)."""
        used = self.kv_total_tokens - self.kv_headroom_tokens
        return used / self.kv_total_tokens if self.kv_total_tokens else 1.0

    def age_s(self, now: float) -> float:
        """Age of this state at ``now`` (never negative: clocks may disagree slightly)."""
        return max(now - self.observed_at, 0.0)

    def to_json(self) -> dict[str, Any]:
        return {_camel(f.name): getattr(self, f.name) for f in fields(self)}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


_WIRE = {_camel(f.name): f for f in fields(EngineSnapshot)}


def snapshot_from_json(doc: Any) -> EngineSnapshot:
    """Parse the wire form; ``ValueError`` names the field that is missing or wrong."""
    if not isinstance(doc, dict):
        raise ValueError("snapshot must be a JSON object")
    unknown = sorted(set(doc) - set(_WIRE))
    if unknown:
        raise ValueError(f"unknown snapshot field {unknown[0]!r}")
    values: dict[str, Any] = {}
    for key, f in _WIRE.items():
        if key not in doc:
            raise ValueError(f"snapshot field {key!r} is required")
        value = doc[key]
        if f.type in ("str",):
            if not isinstance(value, str):
                raise ValueError(f"snapshot field {key!r} must be a string")
        elif f.type in ("int",):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"snapshot field {key!r} must be an integer")
        elif isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"snapshot field {key!r} must be a number")
        values[f.name] = float(value) if f.type == "float" else value
    return EngineSnapshot(**values)


def step_overhead_s(cost: StepCostModel, running: int) -> float:
    """Time of one step that is not prefill: fixed cost plus one decode per running request."""
    return cost.c0_s + cost.decode_seq_s * running


def prefill_time_s(cost: StepCostModel, tokens: int, running: int, budget: int) -> float:
    """Time to push ``tokens`` prefill tokens through steps of ``budget`` tokens each.

    Each step also carries the running decodes, which is why a busy engine prefills slower.
    """
    if tokens <= 0:
        return 0.0
    steps = -(-tokens // max(budget, 1))
    return tokens * cost.prefill_token_s + steps * step_overhead_s(cost, running)


def kv_wait_s(deficit_tokens: int, drain_tokens_per_s: float) -> float:
    """Time until ``deficit_tokens`` of KV are freed at the drain rate (inf if nothing drains)."""
    if deficit_tokens <= 0:
        return 0.0
    if drain_tokens_per_s <= 0:
        return math.inf
    return deficit_tokens / drain_tokens_per_s


def snapshot_from_view(
    view: EngineView,
    engine_id: str,
    region: str,
    cost: StepCostModel,
    observed_at: float | None = None,
) -> EngineSnapshot:
    """Condense an engine's scheduler state (the policy's view) into what it publishes.

    Reserved KV uses each request's ``output_bound`` (the predictor's bound at
    ``predictorConfidence``, CacheOPT's estimate), so a router sees the engine's
    own demand estimates instead of guessing them. Queue delay is the prefill
    work queued ahead plus the wait for KV when the waiting prompts do not fit.
    """
    bs = view.block_size
    reserved = 0
    queued_prefill = 0
    waiting_kv = 0
    for r in view.waiting:
        need = r.prompt_tokens + max(r.output_bound, r.output_tokens + 1)
        reserved += need
        queued_prefill += max(r.total_tokens - r.swapped_tokens, 1)
        waiting_kv += r.total_tokens
    drain = 0.0
    step = step_overhead_s(cost, len(view.running))
    releases: list[tuple[int, int]] = []
    for r in view.running:
        held = r.blocks_held * bs
        grow = r.prompt_tokens + max(r.output_bound, r.output_tokens + 1) - held
        reserved += max(grow, 0)
        if r.in_prefill:
            queued_prefill += r.remaining_tokens
        remaining = r.predicted_output - r.output_tokens
        if remaining <= 0:  # past its point prediction: assume as much again (renewal guess)
            remaining = max(r.predicted_output, 1)
        releases.append((remaining, held))
        drain += held / (remaining * step)
    free = view.free_blocks * bs
    delay = prefill_time_s(cost, queued_prefill, len(view.running), view.max_num_batched_tokens)
    deficit = waiting_kv - free
    if deficit > 0:
        # The waiting queue needs KV the running requests still hold: wait for the
        # soonest finishers until enough is freed.
        releases.sort()
        freed = 0
        for remaining, held in releases:
            freed += held
            if freed >= deficit:
                delay += remaining * step
                break
        else:
            delay += kv_wait_s(deficit, drain) if drain > 0 else 0.0
    return EngineSnapshot(
        engine_id=engine_id,
        region=region,
        kv_total_tokens=view.total_blocks * bs,
        kv_free_tokens=free,
        kv_reserved_tokens=reserved,
        waiting=len(view.waiting),
        running=len(view.running),
        waiting_prompt_tokens=queued_prefill,
        predicted_queue_delay_s=delay,
        kv_drain_tokens_per_s=drain,
        max_batched_tokens=view.max_num_batched_tokens,
        observed_at=view.now if observed_at is None else observed_at,
    )
