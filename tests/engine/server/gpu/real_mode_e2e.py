"""GPU-only end-to-end check of ``sloserve-engine`` in REAL mode (run by hand on the lent GPU).

Not collected by pytest (CI has no GPU). It builds a tiny Llama (dummy weights, word-level
tokenizer), starts ``sloserve-engine`` -> ``vllm serve`` with ``SLOScheduler`` exactly as a pod
would, and checks over HTTP: completions (plain, streaming, too long), 32 concurrent clients,
admin PUT (401 / 200 / 422), the applied revision read back from the scheduler, the engine-core
``sloserve_*`` metrics in vLLM's /metrics, the token in neither metrics nor logs, and SIGTERM.

    PYTHONPATH=<vllm site>:engine/src OUT=<dir> python3 tests/engine/server/gpu/real_mode_e2e.py

Results: ``$OUT/results.json``, ``$OUT/engine.log``, ``$OUT/metrics.txt``; docs/engine.md
records a run.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

URL = "http://127.0.0.1:8000"
TOKEN = "e2e-secret-token-0123456789abcdef"
OUT = Path(os.environ.get("OUT", "/tmp/sloserve-e2e-out"))
WORK = Path("/tmp/sloserve-e2e")
RESULTS: dict[str, Any] = {}


def record(name: str, value: Any) -> None:
    RESULTS[name] = value
    (OUT / "results.json").write_text(json.dumps(RESULTS, indent=1, default=str))
    print(f"[{time.strftime('%H:%M:%S')}] {name}: {value}", flush=True)


def make_tiny_model(path: Path) -> None:
    """2-layer Llama config plus a WordLevel tokenizer: vLLM needs no weights with dummy load."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    path.mkdir(parents=True, exist_ok=True)
    vocab = {"[UNK]": 0, "<s>": 1, "</s>": 2, **{f"w{i}": i + 3 for i in range(2000)}}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.save(str(path / "tokenizer.json"))
    tokenizer_config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "[UNK]",
        "model_max_length": 4096,
    }
    (path / "tokenizer_config.json").write_text(json.dumps(tokenizer_config))
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": 256,
        "intermediate_size": 512,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 64,
        "vocab_size": 2048,
        "max_position_embeddings": 4096,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "torch_dtype": "bfloat16",
        "bos_token_id": 1,
        "eos_token_id": 2,
        "tie_word_embeddings": False,
    }
    (path / "config.json").write_text(json.dumps(config))


def start_engine(model: Path) -> subprocess.Popen[bytes]:
    wrapper = WORK / "vllm"  # the `vllm` CLI, from wherever vllm is importable
    wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} -m vllm.entrypoints.cli.main "$@"\n')
    wrapper.chmod(0o755)
    (WORK / "token").write_text(TOKEN + "\n")
    (WORK / "knobs.json").write_text(json.dumps({"policy": "vllm"}))
    cmd = [
        *(sys.executable, "-m", "sloserve_engine.server.cli", "--host", "127.0.0.1"),
        *("--port", "8000", "--served-model-name", "tiny"),
        *("--knobs-file", str(WORK / "knobs.json"), "--admin-token-file", str(WORK / "token")),
        *("--kv-tokens", "16384", "--vllm-executable", str(wrapper), "--"),
        *("--model", str(model), "--load-format", "dummy", "--enforce-eager"),
        *("--max-model-len", "2048", "--gpu-memory-utilization", "0.3", "--max-num-seqs", "64"),
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1"}
    log = (OUT / "engine.log").open("w")
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)


def wait_healthy(proc: subprocess.Popen[bytes], timeout_s: float = 420) -> None:
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        if proc.poll() is not None:
            raise SystemExit(f"engine exited early with {proc.returncode}")
        try:
            if httpx.get(f"{URL}/sloserve/health", timeout=2).status_code == 200:
                record("healthy_after_s", round(time.monotonic() - start, 1))
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise SystemExit("engine did not become healthy")


async def concurrent_exact(n: int) -> bool:
    async with httpx.AsyncClient(base_url=URL, timeout=120) as client:

        async def one(i: int) -> int:
            body = {"model": "tiny", "prompt": [7] * (100 + 20 * i), "max_tokens": 64 + i}
            r = await client.post("/v1/completions", json={**body, "ignore_eos": True})
            return int(r.json()["usage"]["completion_tokens"])

        got = await asyncio.gather(*(one(i) for i in range(n)))
    return got == [64 + i for i in range(n)]


def checks() -> None:
    record("health", httpx.get(f"{URL}/sloserve/health").json())
    record("knobs_get", httpx.get(f"{URL}/sloserve/knobs").json())
    body = {
        "model": "tiny",
        "prompt": "w1 w2 w3 w4",
        "max_tokens": 16,
        "ignore_eos": True,
        "vllm_xargs": {"slo_class": "gold", "ttft_ms": 500, "tbt_ms": 100},
    }
    r = httpx.post(f"{URL}/v1/completions", json=body, timeout=60)
    record("completion", [r.status_code, r.json().get("usage")])
    stream_body = {**body, "stream": True}
    with httpx.stream("POST", f"{URL}/v1/completions", json=stream_body, timeout=60) as s:
        events = [line for line in s.iter_lines() if line.startswith("data: ")]
    record("stream_events", [len(events), events[-1]])
    too_long = {"model": "tiny", "prompt": [5] * 2040, "max_tokens": 20}
    r = httpx.post(f"{URL}/v1/completions", json=too_long)
    record("too_long", [r.status_code, r.text[:300]])
    record("concurrent32_exact", asyncio.run(concurrent_exact(32)))
    new = {"policy": "sloserve", "reservationRatio": 0.1}
    record("put_no_token", httpx.put(f"{URL}/sloserve/knobs", json=new).status_code)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    r = httpx.put(f"{URL}/sloserve/knobs", json=new, headers=auth)
    record("put_ok", [r.status_code, r.json()["revision"]])
    r = httpx.put(f"{URL}/sloserve/knobs", json={"reservationRatio": 0.9}, headers=auth)
    record("put_bad", [r.status_code, r.json()["errors"]])
    httpx.post(f"{URL}/v1/completions", json={**body, "max_tokens": 4}, timeout=60)  # one step
    time.sleep(0.5)
    record("health_after_put", httpx.get(f"{URL}/sloserve/health").json())
    record("concurrent32_exact_sloserve_policy", asyncio.run(concurrent_exact(32)))
    metrics = httpx.get(f"{URL}/metrics").text
    (OUT / "metrics.txt").write_text(metrics)
    ours = [
        line
        for line in metrics.splitlines()
        if line.startswith("sloserve_") and "_bucket" not in line and "_created" not in line
    ]
    record("sloserve_metric_lines", ours)
    record("vllm_metrics_present", "vllm:num_requests_running" in metrics)
    record("token_in_metrics", TOKEN in metrics)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    WORK.mkdir(parents=True, exist_ok=True)
    make_tiny_model(WORK / "tiny")
    proc = start_engine(WORK / "tiny")
    try:
        wait_healthy(proc)
        checks()
    finally:
        start = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        record("sigterm_exit", [proc.returncode, round(time.monotonic() - start, 1)])
        record("token_in_log", TOKEN in (OUT / "engine.log").read_text())


if __name__ == "__main__":
    main()
