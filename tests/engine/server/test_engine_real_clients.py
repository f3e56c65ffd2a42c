"""Real clients against a running ``sloserve-engine --simulated`` (issue 12 item 6).

The ``openai`` package (completions and chat, streaming and not, error parsing)
and ``vllm bench serve`` (``openai`` and ``openai-chat`` backends). The benchmark
needs a tokenizer; the test trains a tiny word-level one with the ``tokenizers``
library into a temporary directory, so nothing comes from a model hub
(``HF_HUB_OFFLINE=1``). Before issue 12 every ``openai-chat`` request failed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import openai
import pytest
from engine_helpers import EngineProcess
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

VOCAB = [f"w{i}" for i in range(500)]


def build_tokenizer(directory: Path) -> Path:
    """A word-level tokenizer over ``VOCAB`` that transformers' AutoTokenizer loads offline."""
    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.decoder = decoders.WordPiece()  # joins words with spaces
    trainer = trainers.WordLevelTrainer(special_tokens=["<unk>", "<s>", "</s>"])
    tok.train_from_iterator([" ".join(VOCAB)], trainer)
    tok.save(str(directory / "tokenizer.json"))
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "unk_token": "<unk>",
        "bos_token": "<s>",
        "eos_token": "</s>",
        "model_max_length": 8192,
        "chat_template": "{% for m in messages %}{{ m['content'] }} {% endfor %}",
    }
    (directory / "tokenizer_config.json").write_text(json.dumps(config))
    return directory


def _client(engine: EngineProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{engine.url}/v1", api_key="unused", max_retries=0)


def test_openai_completions_streaming_and_not(engine_proc: EngineProcess) -> None:
    client = _client(engine_proc)
    done = client.completions.create(model=engine_proc.model, prompt="hello there", max_tokens=5)
    assert done.choices[0].text == " t0 t1 t2 t3 t4"
    assert done.usage is not None and done.usage.prompt_tokens == 2
    stream = client.completions.create(
        model=engine_proc.model,
        prompt=[1, 2, 3],
        max_tokens=4,
        stream=True,
        stream_options={"include_usage": True},
        extra_body={"vllm_xargs": {"slo_class": "interactive", "ttft_ms": 5000}},
    )
    chunks = list(stream)
    assert [c.choices[0].text for c in chunks if c.choices] == [" t0", " t1", " t2", " t3"]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 4


def test_openai_chat_streaming_and_not(engine_proc: EngineProcess) -> None:
    client = _client(engine_proc)
    messages = [{"role": "user", "content": "hi"}]
    done = client.chat.completions.create(
        model=engine_proc.model, messages=messages, max_completion_tokens=3
    )
    assert done.choices[0].message.role == "assistant"
    assert done.choices[0].message.content == " t0 t1 t2"
    assert done.choices[0].finish_reason == "length"
    stream = client.chat.completions.create(
        model=engine_proc.model, messages=messages, max_tokens=3, stream=True
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == " t0 t1 t2"


def test_openai_client_parses_the_engines_errors(engine_proc: EngineProcess) -> None:
    client = _client(engine_proc)
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    assert "does not exist" in missing.value.message
    with pytest.raises(openai.BadRequestError) as too_long:
        client.completions.create(model=engine_proc.model, prompt=[1] * 9000, max_tokens=None)
    assert "maximum context length" in too_long.value.message


@pytest.mark.slow  # each `vllm bench serve` imports vLLM: ~1 min on the 2-core machine
@pytest.mark.parametrize(
    ("backend", "endpoint"),
    [("openai", "/v1/completions"), ("openai-chat", "/v1/chat/completions")],
)
def test_vllm_bench_serve_completes_every_request(
    engine_proc: EngineProcess, tmp_path: Path, backend: str, endpoint: str
) -> None:
    pytest.importorskip("vllm", reason="the engine extra installs the vllm CLI")
    tokenizer = build_tokenizer(tmp_path)
    num_prompts, output_len = 20, 8
    argv = [
        str(Path(sys.executable).with_name("vllm")), "bench", "serve",
        "--backend", backend, "--endpoint", endpoint, "--base-url", engine_proc.url,
        "--model", engine_proc.model, "--tokenizer", str(tokenizer),
        "--dataset-name", "random", "--random-input-len", "32",
        "--random-output-len", str(output_len), "--num-prompts", str(num_prompts),
        "--request-rate", "inf", "--disable-tqdm",
        "--save-result", "--result-dir", str(tmp_path), "--result-filename", "result.json",
    ]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=400, env=env, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads((tmp_path / "result.json").read_text())
    assert (result["completed"], result["failed"]) == (num_prompts, 0)
    assert result["total_output_tokens"] == num_prompts * output_len
