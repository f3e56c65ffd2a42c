"""Host-time overhead of sloserve's scheduler against stock vLLM, measured on a CPU.

``python -m sloserve_engine.vllm.overhead_bench [--requests 600] [--policies vllm,sloserve]``

Each scheduler (stock ``StockTimingScheduler`` and ``SLOScheduler`` per policy)
runs the same offline workload on real vLLM 0.26.0 scheduler objects with the
fake CPU model (:mod:`.cpu_driver`), at the GPU baseline's shape (97,488 KV
tokens, 256 sequences, 8,192 batched tokens). The step log's ``sched_s``
(time inside ``schedule()`` + ``update_from_output()``) is the number compared:
it is the engine core's CPU time per step, which asynchronous scheduling must
hide behind the GPU step (about 6 ms at this shape on an H200).
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

from .cpu_driver import (
    CpuEngineSpec,
    FakeModelDriver,
    build_scheduler,
    build_vllm_config,
    make_request,
)
from .scheduler import SLOScheduler, StockTimingScheduler
from .steplog import STEP_LOG_ENV

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


def run_one(name: str, shapes: Sequence[tuple[int, int]], log: Path) -> list[float]:
    """Per-step ``sched_s`` of one scheduler on the workload (seconds)."""
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
    driver = FakeModelDriver(build_scheduler(cls, build_vllm_config(spec), spec), depth=2)
    for i, (prompt, output) in enumerate(shapes):
        driver.add(make_request(f"r{i}", prompt, output, spec.block_size))
    while driver.busy:
        driver.step()
    del os.environ[STEP_LOG_ENV]
    with log.open() as f:
        return [float(row["sched_s"]) for row in csv.DictReader(f)]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=600, help="offline requests per run")
    parser.add_argument("--policies", default="vllm,sloserve", help="comma-separated policies")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    shapes = workload(args.requests, args.seed)
    console = Console()
    table = Table(title=f"host time per step, {args.requests} requests, 256 seqs, 97,488 KV tokens")
    for column in ("scheduler", "steps", "median ms", "p90 ms", "p99 ms", "total s"):
        table.add_column(column, justify="right")
    with tempfile.TemporaryDirectory() as tmp:
        for name in [STOCK, *args.policies.split(",")]:
            with console.status(f"running {name}"):
                times = run_one(name, shapes, Path(tmp) / f"{name}.csv")
            q = statistics.quantiles(times, n=100)
            table.add_row(
                name,
                str(len(times)),
                f"{statistics.median(times) * 1e3:.2f}",
                f"{q[89] * 1e3:.2f}",
                f"{q[98] * 1e3:.2f}",
                f"{sum(times):.1f}",
            )
    console.print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
