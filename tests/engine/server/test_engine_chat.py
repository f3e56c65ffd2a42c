"""``POST /v1/chat/completions`` of the simulated engine, in OpenAI's chat shape.

Before issue 12 the route did not exist: FastAPI answered ``{"detail":"Not
Found"}`` and ``vllm bench serve --backend openai-chat`` failed every request.
"""

from __future__ import annotations

import json

import httpx
import pytest
from engine_helpers import ServeApp, SimAppFactory

from sloserve_engine.server.chat import MESSAGE_OVERHEAD_TOKENS

MESSAGES = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": [{"type": "text", "text": "Hello there, engine!"}]},
]
PROMPT_TOKENS = 2 * MESSAGE_OVERHEAD_TOKENS + 3 + 5  # "Be brief ." + "Hello there , engine !"


def test_chat_completion_answers_in_the_chat_shape(base: str) -> None:
    body = {"model": "sim-model", "messages": MESSAGES, "max_completion_tokens": 6}
    r = httpx.post(f"{base}/v1/chat/completions", json=body, timeout=30)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["object"] == "chat.completion" and out["id"].startswith("chatcmpl-")
    choice = out["choices"][0]
    assert choice["message"]["role"] == "assistant"
    assert choice["message"]["content"] == " t0 t1 t2 t3 t4 t5"
    assert choice["finish_reason"] == "length"
    assert out["usage"] == {
        "prompt_tokens": PROMPT_TOKENS,
        "completion_tokens": 6,
        "total_tokens": PROMPT_TOKENS + 6,
    }


def test_chat_stream_sends_role_then_one_delta_per_token_usage_and_done(base: str) -> None:
    body = {
        "messages": MESSAGES,
        "max_tokens": 4,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    with httpx.stream("POST", f"{base}/v1/chat/completions", json=body, timeout=30) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        events = [line[6:] for line in r.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    deltas = [c["choices"][0] for c in chunks[1:] if c["choices"]]
    assert [d["delta"]["content"] for d in deltas] == [" t0", " t1", " t2", " t3"]
    assert [d["finish_reason"] for d in deltas] == [None, None, None, "length"]
    assert chunks[-1]["usage"]["completion_tokens"] == 4


def test_chat_without_a_length_fills_the_context(
    serve_app: ServeApp, make_sim_app: SimAppFactory
) -> None:
    body = {"messages": [{"role": "user", "content": "hi"}]}
    with serve_app(make_sim_app(max_model_len=64)) as url:
        r = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=60)
    assert r.json()["usage"]["total_tokens"] == 64


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"messages": []}, 400, "messages"),
        ({"messages": [{"role": "wizard", "content": "x"}]}, 400, "messages.0.role"),
        ({"model": "other", "messages": MESSAGES}, 404, "model"),
        ({"messages": MESSAGES, "n": 2}, 400, "n"),
        ({"messages": MESSAGES, "vllm_xargs": {"tbt_ms": 0}}, 400, "vllm_xargs.tbt_ms"),
        (
            {"messages": [{"role": "user", "content": "x " * 9000}], "max_tokens": 1},
            400,
            "prompt",
        ),
    ],
)
def test_bad_chat_requests_get_openai_errors_naming_the_field(
    base: str, body: dict[str, object], status: int, param: str
) -> None:
    r = httpx.post(f"{base}/v1/chat/completions", json=body)
    assert r.status_code == status, r.text
    assert r.json()["error"]["param"] == param
