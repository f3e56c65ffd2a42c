"""OpenAI ``POST /v1/chat/completions`` for the simulated engine: body and response shape.

The demo's chat clients (the ``openai`` package, ``vllm bench serve --backend
openai-chat``) need the chat shape; the fake model answers every conversation
with ``max_completion_tokens`` (or ``max_tokens``) fake tokens. Text parts of
a message count through the fake tokenizer, and each message adds
``MESSAGE_OVERHEAD_TOKENS`` for its role markers, as a chat template would.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

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

MESSAGE_OVERHEAD_TOKENS = 4
"""Template tokens per message (role header and end-of-turn marker)."""


class TextPart(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None


class ChatRequest(BaseModel):
    """The subset of the OpenAI chat body the simulated engine reads."""

    model_config = ConfigDict(extra="allow")

    model: str | None = None
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1, strict=True)
    max_tokens: int | None = Field(default=None, ge=1, strict=True)
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int = Field(default=1, ge=1)
    vllm_xargs: VllmXargs = None


def message_tokens(message: ChatMessage) -> int:
    content = message.content
    if content is None:
        text = ""
    elif isinstance(content, str):
        text = content
    else:
        text = " ".join(part.text for part in content)
    return MESSAGE_OVERHEAD_TOKENS + count_text_tokens(text)


def prepare_chat(body: bytes, backend: RequestLimits) -> Prepared:
    """Parse and check one chat body; raises :class:`APIError`."""
    req = validate_body(ChatRequest, body)
    return prepare(
        req,
        backend,
        "chatcmpl",
        lambda: sum(message_tokens(m) for m in req.messages),
        req.max_completion_tokens or req.max_tokens,
    )


class ChatShape:
    """``chat.completion`` and ``chat.completion.chunk`` objects, as vLLM sends them."""

    def _chunk(self, p: Prepared, model: str) -> dict[str, Any]:
        return {
            "id": p.request_id,
            "object": "chat.completion.chunk",
            "created": p.created,
            "model": model,
        }

    def opening(self, p: Prepared, model: str) -> list[dict[str, Any]]:
        delta = {"role": "assistant", "content": ""}
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}
        return [{**self._chunk(p, model), "choices": [choice]}]

    def token(self, p: Prepared, model: str, text: str, finish: str | None) -> dict[str, Any]:
        choice = {"index": 0, "delta": {"content": text}, "logprobs": None, "finish_reason": finish}
        return {**self._chunk(p, model), "choices": [choice]}

    def usage_event(self, p: Prepared, model: str, produced: int) -> dict[str, Any]:
        return {**self._chunk(p, model), "choices": [], "usage": usage(p, produced)}

    def whole(self, p: Prepared, model: str, text: str, produced: int) -> dict[str, Any]:
        message = {"role": "assistant", "content": text}
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": "length"}
        return {
            "id": p.request_id,
            "object": "chat.completion",
            "created": p.created,
            "model": model,
            "choices": [choice],
            "usage": usage(p, produced),
        }
