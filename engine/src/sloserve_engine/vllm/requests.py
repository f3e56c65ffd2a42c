"""Per-request bookkeeping the adapter keeps beside vLLM's ``Request``.

vLLM's ``Request`` carries no SLO, prediction or token timing, so the
scheduler keeps one :class:`RequestMeta` per live request and turns it into
policy views and finished-request facts. Pure (no vLLM import).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..contract.slo import SLO
from ..policy.views import RequestView


@dataclass(slots=True)
class RequestMeta:
    """What the adapter knows about a request that vLLM does not."""

    slo: SLO
    predicted_output: int
    output_bound: int
    max_output_tokens: int
    """``max_model_len - prompt``: the only output cap a policy may see (no per-request max)."""
    first_token_time: float | None = None
    last_token_time: float | None = None
    tokens_seen: int = 0
    """Output tokens counted by :attr:`last_token_time` (the next increase is a new token)."""
    max_gap_s: float = 0.0
    """Longest gap between two of its tokens so far (strict attainment)."""
    swapped_tokens: int = 0
    """Tokens whose KV the offload connector holds for this request after a swap preemption."""
    view: RequestView | None = None
    """Last view built; reused while vLLM's counters (computed and output tokens, blocks
    held, preemptions) still equal its fields (waiting requests rarely change)."""

    def touch(self) -> None:
        """Forget the cached view after a change of the fields kept here."""
        self.view = None
