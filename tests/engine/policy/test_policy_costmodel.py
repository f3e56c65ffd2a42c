"""Step-time cost model: schema parsing, the step formula, and its inverse for chunk sizing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sloserve_engine.policy.costmodel import (
    GPU_PROFILE_H200_LLAMA_8B,
    LLAMA_3_1_8B_BF16_KV_BYTES_PER_TOKEN,
    SCHEMA,
    CostModelError,
    StepCostModel,
    attention_pairs,
    cost_model_for,
    cost_model_from_json,
    load_cost_model,
)

MODEL = StepCostModel(
    c0_s=0.006,
    prefill_token_s=2e-5,
    prefill_ctx_s=1e-6,
    decode_seq_s=1.4e-5,
    decode_ctx_s=4e-8,
)


def _doc(**coefficients: Any) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "coefficients": {"c0_s": 0.006, "prefill_token_s": 2e-5, **coefficients},
    }


def test_kv_bytes_per_token_of_llama_8b() -> None:
    assert LLAMA_3_1_8B_BF16_KV_BYTES_PER_TOKEN == 131072


def test_json_round_trip() -> None:
    assert cost_model_from_json(MODEL.to_json()) == MODEL


def test_shipped_profile_loads() -> None:
    model = cost_model_for("h200-llama-3.1-8b")
    assert model.c0_s > 0 and model.prefill_token_s > 0


def test_unknown_profile_is_a_clear_error() -> None:
    with pytest.raises(CostModelError, match="no cost model for profile 'tpu-x'"):
        cost_model_for("tpu-x")


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        pytest.param({"coefficients": {}}, "schema must be", id="no-schema"),
        pytest.param({"schema": SCHEMA}, "missing section 'coefficients'", id="no-coefficients"),
        pytest.param(_doc(c0=1.0), "unknown keys in 'coefficients': c0", id="typo-key"),
        pytest.param(_doc(decode_seq_s="fast"), "decode_seq_s must be a number", id="not-number"),
        pytest.param(_doc(decode_seq_s=True), "decode_seq_s must be a number", id="bool"),
        pytest.param(_doc(decode_ctx_s=-1.0), "decode_ctx_s must be >= 0", id="negative"),
        pytest.param(
            {"schema": SCHEMA, "coefficients": {"c0_s": 0.1}},
            "coefficients.prefill_token_s is required",
            id="missing-required",
        ),
        pytest.param({**_doc(), "kv": {"d2h_bytes_per_s": 0}}, "bandwidths must be > 0", id="bw0"),
        pytest.param({**_doc(), "cpu": []}, "'cpu' must be an object", id="cpu-list"),
    ],
)
def test_bad_documents_name_the_problem(doc: dict[str, Any], message: str) -> None:
    with pytest.raises(CostModelError, match=message):
        cost_model_from_json(doc)


def test_load_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text("{not json")
    with pytest.raises(CostModelError, match=r"x\.json: not JSON"):
        load_cost_model(path)
    path.write_text(json.dumps(_doc(extra_s=1)))
    with pytest.raises(CostModelError, match=r"x\.json: unknown keys"):
        load_cost_model(path)


@pytest.mark.parametrize(
    ("args", "expected_s"),
    [
        pytest.param((0, 0, 0, 0), 0.0, id="empty-step-costs-nothing"),
        pytest.param((1000, 1000, 0, 0), 0.006 + 0.02 + 0.001, id="prefill-only"),
        pytest.param((0, 0, 100, 50_000), 0.006 + 0.0014 + 0.002, id="decode-only"),
    ],
)
def test_gpu_step_formula(args: tuple[int, int, int, int], expected_s: float) -> None:
    assert MODEL.gpu_step_s(*args) == pytest.approx(expected_s)


def test_readme_profile_matches_the_gpu_fit() -> None:
    # gpu/README.md: step ≈ 5.96 ms + 22.2 µs per scheduled token.
    assert GPU_PROFILE_H200_LLAMA_8B.gpu_step_s(1000, 0, 0, 0) == pytest.approx(0.02816)


def test_swap_is_a_round_trip_over_pcie() -> None:
    tokens = 1000
    one_way = tokens * 131072 / 25e9
    assert MODEL.swap_s(tokens) == pytest.approx(2 * one_way)


@given(
    limit=st.floats(0.0, 0.5),
    decodes=st.integers(0, 256),
    ctx=st.integers(0, 500_000),
    prior=st.integers(0, 8000),
)
def test_max_prefill_tokens_is_the_exact_inverse(
    limit: float, decodes: int, ctx: int, prior: int
) -> None:
    c = MODEL.max_prefill_tokens(limit, decodes, ctx, prior)

    def step(n: int) -> float:
        return MODEL.gpu_step_s(n, prior + n, decodes, ctx) if n or decodes else MODEL.c0_s

    assert c >= 0
    if c > 0:
        assert step(c) <= limit + 1e-12
    assert step(c + 1) > limit - 1e-12


QUADRATIC = StepCostModel(
    c0_s=0.006,
    prefill_token_s=1.8e-5,
    prefill_ctx_s=1.3e-6,
    decode_seq_s=1.7e-5,
    decode_ctx_s=3.4e-8,
    prefill_attn_s=1.4e-9,
)


@pytest.mark.parametrize(
    ("chunk", "prior", "pairs"),
    [(0, 100, 0), (1, 0, 1), (4, 0, 10), (4, 6, 34), (8000, 0, 32_004_000)],
)
def test_attention_pairs_of_a_causal_chunk(chunk: int, prior: int, pairs: int) -> None:
    assert attention_pairs(chunk, prior) == pairs


def test_attention_term_makes_long_prefills_cost_more_than_linear() -> None:
    # H200 prefill sweep (gpu/README.md): 4,096 tokens 99.6 ms, 8,000 tokens 211 ms.
    linear = StepCostModel(c0_s=0.006, prefill_token_s=1.8e-5, prefill_ctx_s=1.3e-6)
    assert QUADRATIC.prefill_s(8000) - linear.prefill_s(8000) == pytest.approx(
        1.4e-9 * attention_pairs(8000, 0)
    )
    assert QUADRATIC.prefill_s(8000) > 2 * QUADRATIC.prefill_s(4000)


@given(
    limit=st.floats(0.0, 0.5),
    decodes=st.integers(0, 256),
    ctx=st.integers(0, 500_000),
    prior=st.integers(0, 8000),
)
def test_max_prefill_tokens_is_the_exact_inverse_with_attention(
    limit: float, decodes: int, ctx: int, prior: int
) -> None:
    c = QUADRATIC.max_prefill_tokens(limit, decodes, ctx, prior)

    def step(n: int) -> float:
        if not n and not decodes:
            return QUADRATIC.c0_s
        return QUADRATIC.gpu_step_s(n, prior + n, decodes, ctx, attention_pairs(n, prior))

    assert c >= 0
    if c > 0:
        assert step(c) <= limit + 1e-12
    assert step(c + 1) > limit - 1e-12


def test_schema_reads_and_writes_the_attention_coefficient() -> None:
    model = cost_model_from_json(_doc(prefill_attn_s=1.4e-9))
    assert model.prefill_attn_s == 1.4e-9
    assert cost_model_from_json(QUADRATIC.to_json()) == QUADRATIC
    assert cost_model_from_json(_doc()).prefill_attn_s == 0.0  # older files stay linear
