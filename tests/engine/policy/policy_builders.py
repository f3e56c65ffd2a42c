"""Builders for policy views (imported by the policy tests): tests state only what they check."""

from __future__ import annotations

from typing import Any

from sloserve_engine.contract.slo import SLO
from sloserve_engine.policy.views import EngineSnapshot, RequestView


def req(
    rid: str = "r",
    *,
    prompt: int = 100,
    out: int = 0,
    computed: int | None = None,
    blocks: int | None = None,
    arrival: float = 0.0,
    pred: int = 100,
    bound: int = 200,
    max_out: int = 4000,
    slo: SLO | None = None,
    first_token: float | None = None,
    swapped: int = 0,
    block_size: int = 16,
) -> RequestView:
    """A request view; ``computed``/``blocks`` default to a running decode's values."""
    if computed is None:
        computed = prompt + out - 1 if out else 0
    if blocks is None:
        blocks = -(-computed // block_size)
    return RequestView(
        request_id=rid,
        arrival_time=arrival,
        prompt_tokens=prompt,
        output_tokens=out,
        computed_tokens=computed,
        blocks_held=blocks,
        slo=slo or SLO(),
        predicted_output=pred,
        output_bound=bound,
        max_output_tokens=max_out,
        first_token_time=first_token,
        swapped_tokens=swapped,
    )


def snapshot(
    running: tuple[RequestView, ...] = (),
    waiting: tuple[RequestView, ...] = (),
    **overrides: Any,
) -> EngineSnapshot:
    fields: dict[str, Any] = {
        "now": 10.0,
        "block_size": 16,
        "total_blocks": 1000,
        "free_blocks": 1000 - sum(r.blocks_held for r in running),
        "max_num_batched_tokens": 8192,
        "max_num_seqs": 256,
        "running": running,
        "waiting": waiting,
    }
    fields.update(overrides)
    return EngineSnapshot(**fields)
