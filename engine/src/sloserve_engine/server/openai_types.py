"""What the simulated engine's OpenAI endpoints share: the parsed request, the backend
they submit to, the fake tokenizer and the checks every body gets.

The completions and chat modules only turn their body into a :class:`Prepared`
and a prepared request into their response shape; everything else (limits,
SLOs, context length, submission, disconnects) is the same code for both.
"""

from __future__ import annotations

import contextlib
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Protocol, TypeVar

from pydantic import BaseModel, ValidationError, WithJsonSchema

from ..contract.slo import SLO, InvalidSLOError, parse_slo
from .errors import APIError

_WORD = re.compile(r"\w+|[^\w\s]")

M = TypeVar("M", bound=BaseModel)


VllmXargs = Annotated[
    dict[str, Any] | None,
    WithJsonSchema(
        {
            "anyOf": [
                {
                    "type": "object",
                    "properties": SLO.model_json_schema(by_alias=False)["properties"],
                    "additionalProperties": True,
                },
                {"type": "null"},
            ],
            "description": "Per-request SLO (slo_class, ttft_ms, tbt_ms); other keys are ignored.",
        }
    ),
]
"""``vllm_xargs``: parsed by :func:`slo_from_xargs`, documented with the SLO fields."""


class StreamOptions(BaseModel):
    include_usage: bool = False


@dataclass(frozen=True, slots=True)
class Prepared:
    """One checked request, ready to submit."""

    request_id: str
    created: int
    prompt_tokens: int
    max_tokens: int
    slo: SLO
    stream: bool
    include_usage: bool


class TokenSource(Protocol):
    """A submitted request: yields one item per generated token, then stops.

    Iteration raises :class:`APIError` if the engine fails midway."""

    def tokens(self) -> AsyncIterator[int]: ...

    def cancel(self) -> None: ...


class RequestLimits(Protocol):
    """What checking a body needs: the served name, the context length, the default SLO
    (the engine itself, or the router's view of the engines behind it)."""

    @property
    def served_model_name(self) -> str: ...

    @property
    def max_model_len(self) -> int: ...

    def default_slo(self) -> SLO: ...


class CompletionBackend(RequestLimits, Protocol):
    """What the OpenAI endpoints need from an engine."""

    def submit(
        self, request_id: str, prompt_tokens: int, max_tokens: int, slo: SLO
    ) -> TokenSource: ...

    def record_refused(self, slo_class: str | None, status: int) -> None:
        """A request answered with ``status`` (4xx or 5xx) before it was queued."""


def validate_body(model: type[M], body: bytes) -> M:
    """The body as ``model``; the first pydantic error becomes a 400 naming the field."""
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise APIError(f"invalid request: {field}: {first['msg']}", field or None) from None


def check_model(requested: str | None, backend: RequestLimits) -> None:
    if requested is not None and requested != backend.served_model_name:
        raise APIError(f"The model `{requested}` does not exist.", "model", status=404)


def count_text_tokens(text: str) -> int:
    """The fake word-level tokenizer: a word or a punctuation mark is one token (no model).

    ``finditer`` returns to the interpreter per token, so a worker thread counting a
    large prompt lets the event loop run every switch interval; ``findall`` would hold
    the GIL for the whole prompt (1 s for 2 MB on the development machine)."""
    return sum(1 for _ in _WORD.finditer(text))


def slo_from_xargs(xargs: Mapping[str, Any] | None, defaults: SLO) -> SLO:
    """``vllm_xargs`` SLO fields over the engine's default SLO: the contract's one parser,
    its error a 400 naming the field (the real-mode proxy answers the same)."""
    try:
        return parse_slo(xargs, defaults)
    except InvalidSLOError as exc:
        raise APIError(str(exc), exc.field) from None


def resolve_max_tokens(requested: int | None, prompt_tokens: int, max_model_len: int) -> int:
    """The output length to produce; ``None`` fills the context. Over-long requests get
    vLLM's context-length explanation (also when ``None`` leaves no room at all)."""
    max_tokens = requested if requested is not None else max(max_model_len - prompt_tokens, 1)
    if prompt_tokens + max_tokens > max_model_len:
        raise APIError(
            f"This model's maximum context length is {max_model_len} tokens. However, you "
            f"requested {prompt_tokens + max_tokens} tokens ({prompt_tokens} in the prompt, "
            f"{max_tokens} in the completion). Please reduce the length of the prompt or "
            "completion.",
            "prompt",
        )
    return max_tokens


@contextlib.contextmanager
def labelled_refusal(slo: SLO) -> Iterator[None]:
    """Refusals raised inside carry the request's SLO class (for the requests counter)."""
    try:
        yield
    except APIError as exc:
        exc.slo_class = slo.slo_class
        raise


def fake_token(index: int) -> tuple[int, str]:
    """The ``index``-th generated token of the fake model (id, text)."""
    return 1000 + index % 30000, f" t{index}"


def usage(p: Prepared, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": p.prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": p.prompt_tokens + completion_tokens,
    }


class ResponseShape(Protocol):
    """How one endpoint renders a prepared request's tokens (JSON-ready dicts)."""

    def opening(self, p: Prepared, model: str) -> list[dict[str, Any]]:
        """Stream events before the first token."""

    def token(self, p: Prepared, model: str, text: str, finish: str | None) -> dict[str, Any]:
        """One stream event per generated token."""

    def usage_event(self, p: Prepared, model: str, produced: int) -> dict[str, Any]:
        """The stream's usage event (``stream_options.include_usage``)."""

    def whole(self, p: Prepared, model: str, text: str, produced: int) -> dict[str, Any]:
        """The non-streaming answer."""


class OpenAIBody(Protocol):
    """The fields completions and chat bodies share."""

    @property
    def model(self) -> str | None: ...

    @property
    def n(self) -> int: ...

    @property
    def stream(self) -> bool: ...

    @property
    def stream_options(self) -> StreamOptions | None: ...

    @property
    def vllm_xargs(self) -> dict[str, Any] | None: ...


def prepare(
    req: OpenAIBody,
    backend: RequestLimits,
    id_prefix: str,
    count_prompt: Callable[[], int],
    requested_max_tokens: int | None,
) -> Prepared:
    """Check what completions and chat share (model, SLO, ``n``, lengths) in one place, so
    both endpoints refuse the same body the same way; raises :class:`APIError`."""
    check_model(req.model, backend)
    slo = slo_from_xargs(req.vllm_xargs, backend.default_slo())
    with labelled_refusal(slo):
        if req.n != 1:
            raise APIError("n > 1 is not supported by the simulated engine", "n")
        prompt_tokens = count_prompt()
        max_tokens = resolve_max_tokens(requested_max_tokens, prompt_tokens, backend.max_model_len)
    return Prepared(
        request_id=f"{id_prefix}-{uuid.uuid4().hex}",
        created=int(time.time()),
        prompt_tokens=prompt_tokens,
        max_tokens=max_tokens,
        slo=slo,
        stream=req.stream,
        include_usage=bool(req.stream_options and req.stream_options.include_usage),
    )
