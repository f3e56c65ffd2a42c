"""``sloserve bench gpu``: replay a trace online against real vLLM 0.26.0 on a GPU.

Runs on the lent GPU machine only. One engine per scheduler (stock vLLM or
``SLOScheduler`` with a named policy), vLLM's defaults otherwise (asynchronous
scheduling, multiprocess engine core), dummy weights from a ``config.json``,
token-id prompts, ``ignore_eos`` so every request yields exactly its trace
length. Requests are submitted at their scaled arrival times and every output
token is timestamped by the client, as the H200 baseline's was (docs/benchmarks.md).

The KV budget is fixed with ``num_gpu_blocks_override`` rather than a memory
fraction, so H100 and H200 runs get exactly the same number of KV tokens.

Workload options are those of ``bench sim`` (:mod:`.workloads`): disjoint trace
segments, seeds, Poisson or gamma arrivals, the mixed-SLO workload. Requests still
running ``--drain-s`` after the last arrival are cancelled and count as misses.
``--max-num-batched-tokens`` and ``--long-prefill-token-threshold`` set vLLM's own
chunked-prefill knobs (the tuned-stock baseline: ``--schedulers stock --tag tuned``).

Outputs per invocation (``<stamp>`` = its start time, so several commands can
share one folder): per replay ``req_<label>_<rate>_<workload>_g<segment>_s<seed>.csv``
(one row per request, :data:`REQUEST_COLUMNS`); per scheduler the engine-core step
log ``steps_<label>_<stamp>.csv`` (split per replay with the time windows of
``runs_<stamp>.json``; both clocks are ``time.perf_counter``, which is
CLOCK_MONOTONIC and so comparable across processes); and ``summary_<stamp>.json``
in the format of ``sloserve bench sim``. ``gpu-report`` recomputes every table from
the CSVs. The label is the scheduler's name, plus ``--tag`` when one configuration
of a policy is compared with another (knobs, KV offloading) in the same report.

``--kv-offloading-gib`` attaches vLLM's CPU KV offload connector, which is what
``preemptionMode: swap`` needs: a swap victim's KV (output included) is reloaded
from host memory instead of recomputed.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import random
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sloserve_engine.bench.sweep import DRAIN_BOUND_S, aggregate, max_rates, metrics_record
from sloserve_engine.bench.workloads import (
    add_workload_arguments,
    workload_name,
    workload_record,
    workload_specs,
)
from sloserve_engine.sim.metrics import STALL_S, RequestTiming, RunMetrics, summarize
from sloserve_engine.sim.workload import TraceRequest, WorkloadSpec, build_workload

from ..contract.slo import SLO

STOCK = "stock"
LLAMA_31_8B_CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_attention_heads": 32,
    "num_hidden_layers": 32,
    "num_key_value_heads": 8,
    "head_dim": 128,
    "vocab_size": 128256,
    "max_position_embeddings": 131072,
    "rms_norm_eps": 1e-05,
    "rope_theta": 500000.0,
    "rope_scaling": {
        "factor": 8.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 8192,
        "rope_type": "llama3",
    },
    "hidden_act": "silu",
    "torch_dtype": "bfloat16",
    "tie_word_embeddings": False,
    "bos_token_id": 128000,
    "eos_token_id": 128001,
}


@dataclass(slots=True)
class RequestRecord:
    """Client-side timing of one request (seconds from the replay's start)."""

    arrival: float
    n_in: int
    n_out: int
    token_times: list[float] = field(default_factory=list)
    slo: SLO | None = None
    """Its own SLO (mixed-SLO workloads); ``None``: the run's SLO."""

    @property
    def ttft(self) -> float:
        return self.token_times[0] - self.arrival if self.token_times else float("inf")

    @property
    def max_tbt(self) -> float:
        gaps = [b - a for a, b in zip(self.token_times, self.token_times[1:], strict=False)]
        return max(gaps, default=0.0)


def write_model_dir(path: Path) -> Path:
    """A model folder with only ``config.json``: vLLM's dummy loader needs nothing else."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps(LLAMA_31_8B_CONFIG, indent=2))
    return path


def engine_env(scheduler: str, step_log: Path, knobs_path: Path) -> dict[str, str]:
    """Environment the engine-core process inherits: policy, knobs and step logging."""
    env = {
        "VLLM_NO_USAGE_STATS": "1",
        "HF_HUB_OFFLINE": "1",
        "SLOSERVE_STEP_LOG": str(step_log),
    }
    if scheduler != STOCK:
        env["SLOSERVE_POLICY"] = scheduler
        env["SLOSERVE_KNOBS_PATH"] = str(knobs_path)
    return env


def run_label(scheduler: str, tag: str) -> str:
    """Name of a run in file names and report rows; ``_`` would break their parsing."""
    if "_" in tag:
        raise ValueError(f"--tag {tag!r}: use '-' instead of '_'")
    return f"{scheduler}-{tag}" if tag else scheduler


def scheduler_cls(scheduler: str) -> str:
    if scheduler == STOCK:
        return "sloserve_engine.vllm.scheduler.StockTimingScheduler"
    return "sloserve_engine.vllm.scheduler.SLOScheduler"


async def replay(
    engine: object,
    trace: list[TraceRequest],
    slo_ttft_ms: float,
    slo_tbt_ms: float,
    seed: int,
    drain_s: float | None = None,
) -> tuple[list[RequestRecord], float, float]:
    """Submit each request at its arrival time; timestamp every output token.

    With ``drain_s``, requests still streaming ``drain_s`` after the last arrival are
    cancelled (vLLM aborts them); they count as misses, as rejected requests would.
    """
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt
    from vllm.sampling_params import RequestOutputKind

    rng = random.Random(seed)
    records = [RequestRecord(t.arrival, t.prompt_tokens, t.output_tokens, slo=t.slo) for t in trace]
    start = time.perf_counter()

    async def one(i: int, req: TraceRequest) -> None:
        delay = req.arrival - (time.perf_counter() - start)
        if delay > 0:
            await asyncio.sleep(delay)
        record = records[i]
        record.arrival = time.perf_counter() - start
        prompt = TokensPrompt(
            prompt_token_ids=[rng.randrange(1000, 120000) for _ in range(req.prompt_tokens)]
        )
        slo = (
            {"slo_class": req.slo.slo_class, "ttft_ms": req.slo.ttft_s * 1e3}
            | {"tbt_ms": req.slo.tbt_s * 1e3}
            if req.slo is not None
            else {"ttft_ms": slo_ttft_ms, "tbt_ms": slo_tbt_ms}
        )
        params = SamplingParams(
            max_tokens=req.output_tokens,
            ignore_eos=True,
            detokenize=False,
            output_kind=RequestOutputKind.DELTA,
            extra_args=slo,
        )
        async for out in engine.generate(prompt, params, request_id=f"r{i}"):  # type: ignore[attr-defined]
            now = time.perf_counter() - start
            record.token_times.extend([now] * len(out.outputs[0].token_ids))

    tasks = [asyncio.ensure_future(one(i, r)) for i, r in enumerate(trace)]
    if drain_s is None:
        await asyncio.gather(*tasks)
    else:
        deadline = max(r.arrival for r in trace) + drain_s
        _, pending = await asyncio.wait(tasks, timeout=deadline - (time.perf_counter() - start))
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        if pending:
            print(f"  cut off {len(pending)} requests {drain_s:g} s after the last arrival")
    end = time.perf_counter()
    return records, start, end


REQUEST_COLUMNS = (
    "arrival",
    "ttft",
    "finish",
    "n_in",
    "n_out",
    "max_tbt",
    "n_tokens_seen",
    "slo_class",
    "ttft_slo_s",
    "tbt_slo_s",
)
"""One row per request: everything ``gpu-report`` recomputes the tables from."""


def write_requests_csv(path: Path, records: list[RequestRecord], slo: SLO) -> None:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(REQUEST_COLUMNS)
        for r in records:
            finish = r.token_times[-1] if r.token_times else float("nan")
            own = r.slo or slo
            w.writerow(
                [
                    f"{r.arrival:.6f}",
                    f"{r.ttft:.6f}",
                    f"{finish:.6f}",
                    r.n_in,
                    r.n_out,
                    f"{r.max_tbt:.6f}",
                    len(r.token_times),
                    own.slo_class,
                    f"{own.ttft_s:g}",
                    f"{own.tbt_s:g}",
                ]
            )


def summarize_records(
    records: list[RequestRecord], slo: SLO, stall_bound_s: float = STALL_S
) -> RunMetrics:
    """The simulator's metric definitions applied to client-side GPU timings."""
    timings = [
        RequestTiming(
            arrival=r.arrival,
            output_tokens=r.n_out,
            first_token=r.token_times[0] if r.token_times else None,
            finish=r.token_times[-1] if r.token_times else None,
            tokens_seen=len(r.token_times),
            max_gap=r.max_tbt,
            slo=r.slo,
        )
        for r in records
    ]
    gaps = [np.diff(np.asarray(r.token_times)) for r in records if r.token_times]
    return summarize(timings, np.concatenate(gaps) if gaps else np.zeros(0), slo, stall_bound_s)


def policy_of(label: str) -> str:
    """Report name of a run label: stock vLLM is the ``vllm`` policy (``stock-tuned`` ->
    ``vllm-tuned``), everything else keeps its label."""
    return "vllm" + label[len(STOCK) :] if label.startswith(STOCK) else label


def summary_row(label: str, rate: float, m: RunMetrics) -> dict[str, object]:
    """One ``runs`` entry in the JSON format of ``sloserve bench sim``."""
    return {"policy": policy_of(label), "rate": rate, **metrics_record(m)}


def offloading_args(gib: float | None) -> dict[str, object]:
    """Engine arguments for vLLM's CPU KV offload connector, output KV included."""
    if gib is None:
        return {}
    from vllm.config import KVTransferConfig

    return {
        "kv_offloading_size": gib,
        "kv_transfer_config": KVTransferConfig(
            kv_connector_extra_config={"offload_prompt_only": False}
        ),
    }


def engine_args(args: argparse.Namespace, scheduler: str, model_dir: Path) -> object:
    """vLLM's engine arguments of one run (the baseline's, plus the chunked-prefill knobs)."""
    from vllm.engine.arg_utils import AsyncEngineArgs

    return AsyncEngineArgs(
        model=str(model_dir),
        load_format="dummy",
        skip_tokenizer_init=True,
        dtype="bfloat16",
        max_model_len=8192,
        max_num_seqs=256,
        max_num_batched_tokens=args.max_num_batched_tokens,
        long_prefill_token_threshold=args.long_prefill_token_threshold,
        enable_prefix_caching=False,
        num_gpu_blocks_override=args.kv_tokens // 16,
        gpu_memory_utilization=args.gpu_memory_utilization,
        scheduler_cls=scheduler_cls(scheduler),
        seed=args.seeds[0],
        **offloading_args(args.kv_offloading_gib),  # type: ignore[arg-type]
    )


def build_engine(args: argparse.Namespace, scheduler: str, model_dir: Path) -> object:
    from vllm.v1.engine.async_llm import AsyncLLM

    return AsyncLLM.from_engine_args(engine_args(args, scheduler, model_dir))  # type: ignore[arg-type]


def engine_settings(args: argparse.Namespace) -> dict[str, object]:
    """The engine arguments a run row records (the tuned-stock baseline differs in these)."""
    return {
        "max_num_batched_tokens": args.max_num_batched_tokens,
        "long_prefill_token_threshold": args.long_prefill_token_threshold,
        "kv_tokens": args.kv_tokens,
    }


def request_file(label: str, spec: WorkloadSpec) -> str:
    """``req_<label>_<rate>_<workload>_g<segment>_s<seed>.csv``: one file per replay."""
    return f"req_{label}_{spec.rate:g}_{workload_name(spec)}_g{spec.segment}_s{spec.seed}.csv"


async def run_scheduler(
    args: argparse.Namespace, scheduler: str, out: Path, stamp: str
) -> list[dict[str, object]]:
    """One engine, every rate and workload slice in turn (one event loop: AsyncLLM binds to it).

    Returns the run windows for splitting the step log.
    """
    from sloserve_engine.contract.knobs import parse_knobs, write_knobs

    label = run_label(scheduler, args.tag)
    work = Path(tempfile.mkdtemp(prefix="sloserve-bench-"))  # $OUT returns only a few files
    knobs_path = work / f"knobs_{scheduler}.json"
    if scheduler != STOCK:
        write_knobs(knobs_path, parse_knobs({**json.loads(args.knobs), "policy": scheduler}))
    steps_file = f"steps_{label}_{stamp}.csv"
    os.environ.update(engine_env(scheduler, out / steps_file, knobs_path))
    model_dir = write_model_dir(work / "model")
    slo = SLO(ttft_ms=args.slo_ttft_ms, tbt_ms=args.slo_tbt_ms)
    t0 = time.perf_counter()
    engine = build_engine(args, scheduler, model_dir)
    print(f"[{label}] engine up in {time.perf_counter() - t0:.1f}s", flush=True)
    windows: list[dict[str, object]] = []
    try:
        for rate in args.rates:
            for spec in workload_specs(args, rate):
                trace = build_workload(spec)
                records, start, end = await replay(
                    engine, trace, args.slo_ttft_ms, args.slo_tbt_ms, spec.seed, args.drain_s
                )
                req_file = request_file(label, spec)
                write_requests_csv(out / req_file, records, slo)
                metrics = summarize_records(records, slo)
                windows.append(
                    {"scheduler": label, "rate": rate, "start": start, "end": end}
                    | summary_row(label, rate, metrics)
                    | workload_record(spec)
                    | engine_settings(args)
                    | {
                        "req_file": req_file,
                        "steps_file": steps_file,
                        "drain_cutoff_s": args.drain_s,
                    }
                    | {"slo_ttft_s": slo.ttft_s, "slo_tbt_s": slo.tbt_s}
                    | ({"knobs": json.loads(args.knobs)} if scheduler != STOCK else {})
                    | (
                        {"kv_offloading_gib": args.kv_offloading_gib}
                        if args.kv_offloading_gib
                        else {}
                    )
                )
                print(
                    f"[{label}] {workload_name(spec)} segment {spec.segment} seed {spec.seed} "
                    f"rate {rate:g}: {end - start:.1f}s attainment {metrics.slo_attainment:.3f} "
                    f"strict {metrics.strict_attainment:.3f} ttft_p99 {metrics.ttft_p99:.3f}s "
                    f"done {metrics.completed}/{metrics.requests}",
                    flush=True,
                )
    finally:
        engine.shutdown()  # type: ignore[attr-defined]
    return windows


def _non_negative(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--schedulers", default="stock,sloserve", help="stock and/or policy names")
    add_workload_arguments(parser)
    parser.add_argument("--kv-tokens", type=int, default=97488)
    parser.add_argument(
        "--rates", type=lambda s: [float(x) for x in s.split(",")], default=[10, 13, 16, 19, 22]
    )
    parser.add_argument("--slo-ttft-ms", type=float, default=1000.0)
    parser.add_argument("--slo-tbt-ms", type=float, default=100.0)
    parser.add_argument("--gpu-memory-utilization", type=float, default=0.9)
    parser.add_argument(
        "--max-num-batched-tokens",
        type=int,
        default=8192,
        help="vLLM's step token budget (the chunked-prefill budget)",
    )
    parser.add_argument(
        "--long-prefill-token-threshold",
        type=int,
        default=0,
        help="vLLM's cap on one request's prefill chunk per step (0 = none, vLLM's default)",
    )
    parser.add_argument(
        "--drain-s",
        type=_non_negative,
        default=DRAIN_BOUND_S,
        help="cancel requests still running this long after the last arrival (misses)",
    )
    parser.add_argument(
        "--knobs",
        default="{}",
        help='knob overrides for sloserve policies, e.g. {"reservationRatio":0.02}',
    )
    parser.add_argument(
        "--tag",
        default="",
        help="suffix of the run's label, e.g. r0.05 -> sloserve-r0.05, tuned -> stock-tuned",
    )
    parser.add_argument(
        "--kv-offloading-gib",
        type=float,
        help="attach vLLM's CPU KV offload connector with this much host memory (swap)",
    )
    parser.add_argument("--out", type=Path, required=True)


def run(args: argparse.Namespace) -> int:
    args.out.mkdir(parents=True, exist_ok=True)
    workload_specs(args, args.rates[0])  # bad workload options fail before an engine starts
    stamp = time.strftime("%Y%m%dT%H%M%S")
    windows: list[dict[str, object]] = []
    for scheduler in args.schedulers.split(","):
        windows += asyncio.run(run_scheduler(args, scheduler, args.out, stamp))
        (args.out / f"runs_{stamp}.json").write_text(json.dumps(windows, indent=2))
    runs = [{k: v for k, v in w.items() if k not in ("scheduler", "start", "end")} for w in windows]
    report = {
        "runs": runs,
        "summary": aggregate(runs),
        "max_rate": max_rates(runs),
        "max_rate_strict": max_rates(runs, key="strict_attainment"),
    }
    (args.out / f"summary_{stamp}.json").write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    _parser = argparse.ArgumentParser(prog="python -m sloserve_engine.bench.gpu")
    add_arguments(_parser)
    raise SystemExit(run(_parser.parse_args()))
