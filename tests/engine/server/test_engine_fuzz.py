"""Schemathesis fuzzes the OpenAPI schema of a running ``sloserve-engine --simulated``.

The engine runs as a real process (the CLI, real HTTP); the fuzzer generates
valid and invalid bodies for every documented field of the completions, chat
completions and admin operations (the schemas come from ``/openapi.json``:
``server/openapi_doc.py`` puts the request models there). No answer may be a
5xx, and the engine must be healthy afterwards. ``FUZZ_EXAMPLES`` keeps the
default run short for CI; ``SLOSERVE_FUZZ_EXAMPLES`` raises it for a long run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from engine_helpers import EngineProcess, engine_process
from hypothesis import HealthCheck, given, settings

schemathesis = pytest.importorskip("schemathesis", reason="the dev extra installs schemathesis")
from schemathesis.checks import not_a_server_error  # noqa: E402

FUZZ_EXAMPLES = int(os.environ.get("SLOSERVE_FUZZ_EXAMPLES", "20"))
"""Examples per case (10 cases): under a minute with the engine's start on the shared
2-core development machine."""


@pytest.fixture(scope="module")
def fuzzed_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    # A fast modelled GPU and a short context: a fuzzed max_tokens streams in milliseconds.
    tmp = tmp_path_factory.mktemp("fuzz")
    with engine_process(tmp, "--time-scale", "1000", "--", "--max-model-len", "512") as proc:
        yield proc


@pytest.fixture(scope="module")
def engine_schema(fuzzed_engine: EngineProcess) -> Any:
    return schemathesis.openapi.from_url(f"{fuzzed_engine.url}/openapi.json")


OPERATIONS = [
    ("/v1/completions", "POST"),
    ("/v1/chat/completions", "POST"),
    ("/v1/models", "GET"),
    ("/sloserve/knobs", "GET"),
    ("/sloserve/knobs", "PUT"),
    ("/sloserve/health", "GET"),
    ("/metrics", "GET"),
]
"""The engine's own operations; the test below checks the schema has no others."""
WITH_BODY = [op for op in OPERATIONS if op[1] in ("POST", "PUT")]
CASES = [
    *((path, method, schemathesis.GenerationMode.POSITIVE) for path, method in OPERATIONS),
    *((path, method, schemathesis.GenerationMode.NEGATIVE) for path, method in WITH_BODY),
]
"""Valid inputs for every operation; schema-violating ones where there is a body to break
(an operation without parameters has no negative input)."""


def test_every_documented_body_field_is_in_the_schema(fuzzed_engine: EngineProcess) -> None:
    doc = httpx.get(f"{fuzzed_engine.url}/openapi.json").json()
    bodies = {
        model: doc["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]
        for path, method, model in (
            ("/v1/completions", "post", "CompletionRequest"),
            ("/v1/chat/completions", "post", "ChatRequest"),
            ("/sloserve/knobs", "put", "Knobs"),
        )
    }
    assert {m: b["title"] for m, b in bodies.items()} == {m: m for m in bodies}
    completion = bodies["CompletionRequest"]["properties"]
    assert {"prompt", "max_tokens", "stream", "stream_options", "n", "vllm_xargs"} <= set(
        completion
    )
    assert {"slo_class", "ttft_ms", "tbt_ms"} <= set(
        completion["vllm_xargs"]["anyOf"][0]["properties"]
    )
    assert {"messages", "max_completion_tokens", "max_tokens"} <= set(
        bodies["ChatRequest"]["properties"]
    )
    assert {"policy", "sloDefaults", "reservationRatio"} <= set(bodies["Knobs"]["properties"])
    slo_defaults = doc["components"]["schemas"]["SLODefaults"]["properties"]
    assert {"sloClass", "sloClasses", "ttftMs", "tbtMs"} <= set(slo_defaults)


def test_the_fuzzer_covers_every_documented_operation(engine_schema: Any) -> None:
    documented = {
        (op.ok().path, op.ok().method.upper())
        for op in engine_schema.get_all_operations()
        if not op.ok().path.startswith("/sloserve/reservations")  # the router's, not fuzzed here
        and op.ok().path != "/sloserve/state"
    }
    assert documented == set(OPERATIONS)


@pytest.mark.parametrize(("path", "method", "mode"), CASES, ids=str)
def test_no_input_gets_a_5xx(
    engine_schema: Any, fuzzed_engine: EngineProcess, path: str, method: str, mode: Any
) -> None:
    """Valid (positive) and schema-violating (negative) inputs: 2xx or 4xx, never 5xx."""
    headers = {"Authorization": f"Bearer {fuzzed_engine.token}"}

    @given(case=engine_schema[path][method].as_strategy(generation_mode=mode))
    @settings(
        max_examples=FUZZ_EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def fuzz(case: Any) -> None:
        case.call_and_validate(headers=headers, checks=[not_a_server_error], timeout=30)

    fuzz()


def test_engine_is_healthy_after_the_fuzzing(fuzzed_engine: EngineProcess) -> None:
    health = httpx.get(f"{fuzzed_engine.url}/sloserve/health")
    assert health.status_code == 200, health.text
    r = httpx.post(
        f"{fuzzed_engine.url}/v1/completions", json={"prompt": "still here", "max_tokens": 3}
    )
    assert r.status_code == 200, r.text
