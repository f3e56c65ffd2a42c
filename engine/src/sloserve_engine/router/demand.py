"""KV demand of one request: its prompt tokens plus its predicted output at a confidence.

This is CacheOPT's estimate (prompt + output bound that holds with probability
``predictorConfidence``), computed with the engine's own
:class:`~sloserve_engine.policy.predictor.LengthPredictor`: the router keeps one
instance, fed with the outputs it relays, so the quantile logic exists once.

How prompt tokens are counted (:func:`prompt_tokens`):

- a prompt given as token ids (completions ``prompt: [int, ...]``) counts its ids;
- a text prompt (or chat messages) is counted by the caller-supplied ``count_text``,
  which the HTTP router implements with the engine's own tokenizer endpoint, so the
  router never disagrees with the engine about a prompt's length.

The request's own ``max_tokens`` caps the prediction: unlike in trace replay, a
client's cap is not an oracle but a promise the engine enforces.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..contract.slo import SLO
from ..policy.predictor import LengthPredictor, PredictorConfig
from ..policy.views import FinishedInfo


@dataclass(frozen=True, slots=True)
class KvDemand:
    """KV tokens one request is predicted to need, split so the router can price each part."""

    prompt_tokens: int
    """Tokens whose KV the prefill allocates at once."""
    output_tokens: int
    """Output bound at the router's confidence (grows during decode)."""
    predicted_output: int
    """Point prediction (median) of the output length, for reporting and learning."""

    def __post_init__(self) -> None:
        if self.prompt_tokens < 1 or self.output_tokens < 1 or self.predicted_output < 1:
            raise ValueError("prompt and output token counts must be >= 1")

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.output_tokens


def prompt_tokens(prompt: str | Sequence[int], count_text: Callable[[str], int]) -> int:
    """Prompt length in tokens: ids as given, text through the engine's counting."""
    if isinstance(prompt, str):
        n = count_text(prompt)
        if n < 0:
            raise ValueError("count_text returned a negative token count")
        return max(n, 1)
    return max(len(prompt), 1)


class DemandEstimator:
    """Online demand estimates; one per router replica (learns from what it relays)."""

    def __init__(self, max_model_len: int, config: PredictorConfig | None = None) -> None:
        if max_model_len < 2:
            raise ValueError("max_model_len must be >= 2")
        self.max_model_len = max_model_len
        self.predictor = LengthPredictor(config)

    def demand(
        self,
        prompt_tokens: int,
        slo: SLO,
        confidence: float,
        max_tokens: int | None = None,
    ) -> KvDemand:
        """Demand of a request with ``prompt_tokens`` tokens, bound at ``confidence``.

        ``max_tokens`` is the client's cap when it sent one.
        """
        if prompt_tokens < 1:
            raise ValueError("prompt_tokens must be >= 1")
        if not 0.0 < confidence < 1.0:
            raise ValueError("confidence must be in (0, 1)")
        cap = max(self.max_model_len - prompt_tokens, 1)
        if max_tokens is not None:
            if max_tokens < 1:
                raise ValueError("max_tokens must be >= 1")
            cap = min(cap, max_tokens)
        pred = self.predictor.predict(slo, prompt_tokens, cap, confidence)
        return KvDemand(prompt_tokens, pred.output_bound, pred.predicted_output)

    def observe(
        self,
        request_id: str,
        demand: KvDemand,
        output_tokens: int,
        slo: SLO,
        finish_time: float,
    ) -> None:
        """Learn from one relayed request that finished with ``output_tokens`` tokens."""
        self.predictor.observe(
            FinishedInfo(
                request_id,
                demand.prompt_tokens,
                output_tokens,
                slo,
                demand.predicted_output,
                finish_time,
            )
        )
