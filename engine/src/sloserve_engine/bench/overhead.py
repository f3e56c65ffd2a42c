"""Host-time overhead of sloserve's scheduler against stock vLLM, measured on a CPU.

``python -m sloserve_engine.bench.overhead [--requests 600] [--policies vllm,sloserve]``

Each scheduler (stock ``StockTimingScheduler`` and ``SLOScheduler`` per policy)
runs the same offline workload on real vLLM 0.26.0 scheduler objects with the
fake CPU model (:mod:`.cpu_driver`), at the GPU baseline's shape (97,488 KV
tokens, 256 sequences, 8,192 batched tokens). The step log's ``sched_s``
(time inside ``schedule()`` + ``update_from_output()``) is the number compared:
it is the engine core's CPU time per step, which asynchronous scheduling must
hide behind the GPU step (about 6 ms at this shape on an H200).

All schedulers live in one process and take their steps in turn (one step of
each, round robin), so load from other processes on a shared machine hits
every scheduler alike and the differences between medians stay meaningful.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import statistics
import tempfile
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

from ..vllm.scheduler import SLOScheduler, StockTimingScheduler
from ..vllm.steplog import STEP_LOG_ENV
from .cpu_driver import (
    CpuEngineSpec,
    FakeModelDriver,
    build_scheduler,
    build_vllm_config,
    make_request,
)

STOCK = "stock"
TINY_MODEL = (
    Path(__file__).resolve().parents[4] / "tests" / "engine" / "vllm" / "data" / "tiny-llama"
)


def workload(n: int, seed: int) -> list[tuple[int, int]]:
    """(prompt, output) pairs: lognormal lengths (mean ~375 in / ~280 out), capped."""
    rng = random.Random(seed)
    return [
        (
            min(max(int(rng.lognormvariate(5.6, 0.8)), 4), 2000),
            min(max(int(rng.lognormvariate(5.3, 0.8)), 1), 1000),
        )
        for _ in range(n)
    ]


def build_driver(name: str, shapes: Sequence[tuple[int, int]], log: Path) -> FakeModelDriver:
    """One scheduler (stock or a policy) with the whole workload queued, logging to ``log``."""
    os.environ[STEP_LOG_ENV] = str(log)
    spec = CpuEngineSpec(
        model_dir=TINY_MODEL,
        num_blocks=97_488 // 16 + 1,
        max_num_seqs=256,
        max_num_batched_tokens=8192,
        max_model_len=8192,
        async_scheduling=True,
        additional_config={} if name == STOCK else {"sloserve": {"knobs": {"policy": name}}},
    )
    cls = StockTimingScheduler if name == STOCK else SLOScheduler
    try:
        driver = FakeModelDriver(build_scheduler(cls, build_vllm_config(spec), spec), depth=2)
    finally:
        del os.environ[STEP_LOG_ENV]
    for i, (prompt, output) in enumerate(shapes):
        driver.add(make_request(f"r{i}", prompt, output, spec.block_size))
    return driver


def run_interleaved(
    names: Sequence[str], shapes: Sequence[tuple[int, int]], folder: Path
) -> dict[str, list[float]]:
    """Per-step ``sched_s`` (seconds) of each scheduler, all stepped in turn on the workload."""
    logs = {name: folder / f"{name}.csv" for name in names}
    drivers = [build_driver(name, shapes, log) for name, log in logs.items()]
    while busy := [d for d in drivers if d.busy]:
        for driver in busy:
            driver.step()
    times = {}
    for name, log in logs.items():
        with log.open() as f:
            times[name] = [float(row["sched_s"]) for row in csv.DictReader(f)]
    return times


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=600, help="offline requests per run")
    parser.add_argument("--policies", default="vllm,sloserve", help="comma-separated policies")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    shapes = workload(args.requests, args.seed)
    console = Console()
    names = list(dict.fromkeys([STOCK, *args.policies.split(",")]))
    with tempfile.TemporaryDirectory() as tmp, console.status(f"running {', '.join(names)}"):
        results = run_interleaved(names, shapes, Path(tmp))
    table = Table(title=f"host time per step, {args.requests} requests, 256 seqs, 97,488 KV tokens")
    for column in ("scheduler", "steps", "median ms", "vs stock ms", "p90 ms", "p99 ms", "total s"):
        table.add_column(column, justify="right")
    stock_median = statistics.median(results[STOCK])
    for name, times in results.items():
        q = statistics.quantiles(times, n=100)
        median = statistics.median(times)
        table.add_row(
            name,
            str(len(times)),
            f"{median * 1e3:.2f}",
            f"{(median - stock_median) * 1e3:+.2f}",
            f"{q[89] * 1e3:.2f}",
            f"{q[98] * 1e3:.2f}",
            f"{sum(times):.1f}",
        )
    console.print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
