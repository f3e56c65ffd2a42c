"""What the router reads from a request body: the engine's own checks, nothing more.

The router parses a body with the simulated engine's parser (the same SLO
parser, the same token counting, the same 4xx in OpenAI's error shape), so a
request the router refuses is refused the same way by an engine, and the KV
demand it places by is counted as the engine counts it: token ids as given,
text by the word-level tokenizer of the simulated engine (real vLLM counts
text with the model's tokenizer, typically within ~30 % of that for English).
The body itself is relayed unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..contract.slo import SLO
from ..server.chat import ChatRequest, prepare_chat
from ..server.completions import CompletionRequest, prepare_completion
from ..server.errors import APIError

COMPLETIONS_PATH = "/v1/completions"
CHAT_PATH = "/v1/chat/completions"
PATHS = (COMPLETIONS_PATH, CHAT_PATH)
_PARSERS = {COMPLETIONS_PATH: prepare_completion, CHAT_PATH: prepare_chat}
BODY_SCHEMAS: dict[str, dict[str, Any]] = {
    COMPLETIONS_PATH: CompletionRequest.model_json_schema(),
    CHAT_PATH: ChatRequest.model_json_schema(),
}
"""What the router's OpenAPI document says each body is (the engine's request models)."""


@dataclass(frozen=True, slots=True)
class ServiceLimits:
    """What the engines of the service accept (the router checks bodies against it)."""

    served_model_name: str
    max_model_len: int
    slo: SLO
    """SLO of requests that carry none (the engines' ``sloDefaults``)."""

    def default_slo(self) -> SLO:
        return self.slo


@dataclass(frozen=True, slots=True)
class Routed:
    """A checked request: what placement needs to know about it."""

    prompt_tokens: int
    max_tokens: int
    slo: SLO
    stream: bool


def parse_request(path: str, body: bytes, limits: ServiceLimits) -> Routed:
    """Check ``body`` as the engine would; raises ``APIError`` (a 4xx) otherwise."""
    parse = _PARSERS.get(path)
    if parse is None:
        raise APIError(f"{path} is not served", None, status=404)
    p = parse(body, limits)
    return Routed(p.prompt_tokens, p.max_tokens, p.slo, p.stream)
