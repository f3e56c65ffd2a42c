"""OpenAI ``POST /v1/completions`` for the simulated engine: parsing, SLOs, responses.

Only what the operator, the load generators and the demo send is served:
one prompt per request (text or token ids), ``max_tokens`` produced exactly
(the fake model never stops early), streaming with SSE, and the per-request
SLO in ``vllm_xargs``. Anything else in the body is accepted and ignored,
as vLLM does for sampling options the fake model cannot honour.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..policy.views import SLOTarget

DEFAULT_MAX_TOKENS = 16
"""OpenAI's (and vLLM's) default for completions."""

_WORD = re.compile(r"\w+|[^\w\s]")


class StreamOptions(BaseModel):
    include_usage: bool = False


class CompletionRequest(BaseModel):
    """The subset of the OpenAI completions body the simulated engine reads."""

    model_config = ConfigDict(extra="allow")

    model: str | None = None
    prompt: str | list[int] | list[str] | list[list[int]]
    max_tokens: int | None = Field(default=DEFAULT_MAX_TOKENS, ge=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int = Field(default=1, ge=1)
    vllm_xargs: dict[str, Any] | None = None


class CompletionError(ValueError):
    """A request the engine cannot serve (4xx) or an engine that failed (503); the message
    tells the client why."""

    def __init__(self, message: str, param: str | None = None, status: int = 400) -> None:
        super().__init__(message)
        self.param = param
        self.status = status


def error_response(exc: CompletionError) -> JSONResponse:
    """vLLM's error body shape, so clients need one error parser for both engines."""
    return JSONResponse(_error_body(exc), status_code=exc.status)


def _error_body(exc: CompletionError) -> dict[str, Any]:
    kinds = {404: "NotFoundError", 503: "ServiceUnavailableError"}
    kind = kinds.get(exc.status, "BadRequestError")
    return {"error": {"message": str(exc), "type": kind, "param": exc.param, "code": exc.status}}


def count_prompt_tokens(prompt: str | list[int]) -> int:
    """Token ids count as given; text goes through a fake word-level tokenizer (no model here)."""
    if isinstance(prompt, str):
        return max(1, len(_WORD.findall(prompt)))
    return len(prompt)


def single_prompt(prompt: str | list[int] | list[str] | list[list[int]]) -> str | list[int]:
    """Unwrap a one-element batch; batched prompts are refused (the simulated engine serves one)."""
    if isinstance(prompt, str):
        return prompt
    if prompt and not isinstance(prompt[0], int):
        if len(prompt) != 1:
            raise CompletionError(
                "batched prompts are not supported by the simulated engine; send one per request",
                "prompt",
            )
        only = prompt[0]
        return only if isinstance(only, str) else list(only)
    if not prompt:
        raise CompletionError("prompt must not be empty", "prompt")
    return [int(t) for t in prompt]  # type: ignore[arg-type]


def slo_from_xargs(xargs: Mapping[str, Any] | None, defaults: SLOTarget) -> SLOTarget:
    """``vllm_xargs`` ``slo_class``/``ttft_ms``/``tbt_ms`` over the engine's default SLO."""
    xargs = xargs or {}
    slo_class = xargs.get("slo_class", defaults.slo_class)
    if not isinstance(slo_class, str) or not slo_class:
        raise CompletionError(
            "vllm_xargs.slo_class must be a non-empty string", "vllm_xargs.slo_class"
        )
    targets = {"ttft_ms": defaults.ttft_s * 1000.0, "tbt_ms": defaults.tbt_s * 1000.0}
    for key in targets:
        if key in xargs:
            value = xargs[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise CompletionError(f"vllm_xargs.{key} must be a number > 0", f"vllm_xargs.{key}")
            targets[key] = float(value)
    return SLOTarget(slo_class, targets["ttft_ms"] / 1000.0, targets["tbt_ms"] / 1000.0)


def check_length(prompt_tokens: int, max_tokens: int, max_model_len: int) -> None:
    """Refuse what the model can never hold, with vLLM's explanation."""
    if prompt_tokens + max_tokens > max_model_len:
        raise CompletionError(
            f"This model's maximum context length is {max_model_len} tokens. However, you "
            f"requested {prompt_tokens + max_tokens} tokens ({prompt_tokens} in the prompt, "
            f"{max_tokens} in the completion). Please reduce the length of the prompt or "
            "completion.",
            "prompt",
        )


def fake_token(index: int) -> tuple[int, str]:
    """The ``index``-th generated token of the fake model (id, text)."""
    return 1000 + index % 30000, f" t{index}"


class TokenSource(Protocol):
    """A submitted request: yields one item per generated token, then stops.

    Iteration raises :class:`CompletionError` if the engine fails midway."""

    def tokens(self) -> AsyncIterator[int]: ...

    def cancel(self) -> None: ...


class CompletionBackend(Protocol):
    """What the completions endpoint needs from an engine."""

    served_model_name: str
    max_model_len: int

    def default_slo(self) -> SLOTarget: ...

    def submit(
        self, request_id: str, prompt_tokens: int, max_tokens: int, slo: SLOTarget
    ) -> TokenSource: ...


@dataclass(frozen=True, slots=True)
class _Prepared:
    request_id: str
    prompt_tokens: int
    max_tokens: int
    slo: SLOTarget
    stream: bool
    include_usage: bool


def prepare(body: bytes, backend: CompletionBackend) -> _Prepared:
    """Parse and check one completions body; raises :class:`CompletionError`."""
    try:
        req = CompletionRequest.model_validate_json(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise CompletionError(f"invalid request: {field}: {first['msg']}", field or None) from None
    if req.model is not None and req.model != backend.served_model_name:
        raise CompletionError(f"The model `{req.model}` does not exist.", "model", status=404)
    if req.n != 1:
        raise CompletionError("n > 1 is not supported by the simulated engine", "n")
    prompt_tokens = count_prompt_tokens(single_prompt(req.prompt))
    max_tokens = req.max_tokens or backend.max_model_len - prompt_tokens
    check_length(prompt_tokens, max_tokens, backend.max_model_len)
    return _Prepared(
        request_id=f"cmpl-{uuid.uuid4().hex}",
        prompt_tokens=prompt_tokens,
        max_tokens=max_tokens,
        slo=slo_from_xargs(req.vllm_xargs, backend.default_slo()),
        stream=req.stream,
        include_usage=bool(req.stream_options and req.stream_options.include_usage),
    )


def _usage(p: _Prepared, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": p.prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": p.prompt_tokens + completion_tokens,
    }


def _chunk(p: _Prepared, model: str, created: int, choices: list[dict[str, Any]]) -> str:
    body = {
        "id": p.request_id,
        "object": "text_completion",
        "created": created,
        "model": model,
        "choices": choices,
    }
    return f"data: {json.dumps(body)}\n\n"


async def _sse(p: _Prepared, source: TokenSource, model: str) -> AsyncIterator[str]:
    created = int(time.time())
    produced = 0
    try:
        try:
            async for index in source.tokens():
                _, text = fake_token(index)
                produced += 1
                finish = "length" if produced == p.max_tokens else None
                choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish}
                yield _chunk(p, model, created, [choice])
        except CompletionError as exc:  # as vLLM does: an error event ends the stream
            yield f"data: {json.dumps(_error_body(exc))}\n\n"
            return
        if p.include_usage:
            usage = {
                "id": p.request_id,
                "object": "text_completion",
                "created": created,
                "model": model,
                "choices": [],
                "usage": _usage(p, produced),
            }
            yield f"data: {json.dumps(usage)}\n\n"
        yield "data: [DONE]\n\n"
    finally:
        source.cancel()


async def _complete(p: _Prepared, source: TokenSource, model: str) -> dict[str, Any]:
    texts: list[str] = []
    try:
        async for index in source.tokens():
            texts.append(fake_token(index)[1])
    finally:
        source.cancel()
    return {
        "id": p.request_id,
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {"index": 0, "text": "".join(texts), "logprobs": None, "finish_reason": "length"}
        ],
        "usage": _usage(p, len(texts)),
    }


def completions_router(backend: CompletionBackend) -> APIRouter:
    router = APIRouter()

    @router.post("/v1/completions")
    async def completions(request: Request) -> Response:
        try:
            p = prepare(await request.body(), backend)
            source = backend.submit(p.request_id, p.prompt_tokens, p.max_tokens, p.slo)
        except CompletionError as exc:
            return error_response(exc)
        model = backend.served_model_name
        if p.stream:
            return StreamingResponse(_sse(p, source, model), media_type="text/event-stream")
        try:
            return JSONResponse(await _complete(p, source, model))
        except CompletionError as exc:
            return error_response(exc)

    @router.get("/v1/models")
    async def models() -> JSONResponse:
        card = {
            "id": backend.served_model_name,
            "object": "model",
            "owned_by": "sloserve",
            "max_model_len": backend.max_model_len,
        }
        return JSONResponse({"object": "list", "data": [card]})

    return router
