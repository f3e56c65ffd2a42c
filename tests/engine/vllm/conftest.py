"""Fixtures for the vLLM-adapter tests: a tiny model config and engine factories."""

from __future__ import annotations

from pathlib import Path

import pytest

TINY_MODEL = Path(__file__).parent / "data" / "tiny-llama"


@pytest.fixture(scope="session")
def tiny_model_dir() -> Path:
    """A 2-layer Llama ``config.json`` (no weights, no tokenizer): enough for ``ModelConfig``."""
    return TINY_MODEL
