"""OpenAI ``POST /v1/completions`` for the simulated engine: body and response shape.

Only what the operator, the load generators and the demo send is served:
one prompt per request (text or token ids), ``max_tokens`` produced exactly
(the fake model never stops early), streaming with SSE, and the per-request
SLO in ``vllm_xargs``. Anything else in the body is accepted and ignored,
as vLLM does for sampling options the fake model cannot honour.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from .errors import APIError
from .openai_types import (
    Prepared,
    RequestLimits,
    StreamOptions,
    VllmXargs,
    count_text_tokens,
    prepare,
    usage,
    validate_body,
)

DEFAULT_MAX_TOKENS = 16
"""OpenAI's (and vLLM's) default for completions."""


class CompletionRequest(BaseModel):
    """The subset of the OpenAI completions body the simulated engine reads."""

    model_config = ConfigDict(extra="allow")

    model: str | None = None
    prompt: str | list[int] | list[str] | list[list[int]]
    max_tokens: int | None = Field(default=DEFAULT_MAX_TOKENS, ge=1, strict=True)
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int = Field(default=1, ge=1)
    vllm_xargs: VllmXargs = None


def single_prompt(prompt: str | list[int] | list[str] | list[list[int]]) -> str | list[int]:
    """Unwrap a one-element batch; batched prompts are refused (the simulated engine serves one)."""
    if isinstance(prompt, str):
        return prompt
    if prompt and not isinstance(prompt[0], int):
        if len(prompt) != 1:
            raise APIError(
                "batched prompts are not supported by the simulated engine; send one per request",
                "prompt",
            )
        only = prompt[0]
        return only if isinstance(only, str) else list(only)
    return [int(t) for t in prompt]  # type: ignore[arg-type]


def count_prompt_tokens(prompt: str | list[int]) -> int:
    """Token ids count as given; text goes through the fake tokenizer."""
    count = count_text_tokens(prompt) if isinstance(prompt, str) else len(prompt)
    if count == 0:
        raise APIError("prompt must not be empty", "prompt")
    return count


def prepare_completion(body: bytes, backend: RequestLimits) -> Prepared:
    """Parse and check one completions body; raises :class:`APIError`."""
    req = validate_body(CompletionRequest, body)
    return prepare(
        req,
        backend,
        "cmpl",
        lambda: count_prompt_tokens(single_prompt(req.prompt)),
        req.max_tokens,
    )


class CompletionShape:
    """``text_completion`` objects, as vLLM's completions endpoint sends them."""

    def _base(self, p: Prepared, model: str) -> dict[str, Any]:
        return {
            "id": p.request_id,
            "object": "text_completion",
            "created": p.created,
            "model": model,
        }

    def opening(self, p: Prepared, model: str) -> list[dict[str, Any]]:
        return []

    def token(self, p: Prepared, model: str, text: str, finish: str | None) -> dict[str, Any]:
        choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish}
        return {**self._base(p, model), "choices": [choice]}

    def usage_event(self, p: Prepared, model: str, produced: int) -> dict[str, Any]:
        return {**self._base(p, model), "choices": [], "usage": usage(p, produced)}

    def whole(self, p: Prepared, model: str, text: str, produced: int) -> dict[str, Any]:
        choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": "length"}
        return {**self._base(p, model), "choices": [choice], "usage": usage(p, produced)}
