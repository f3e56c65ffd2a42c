"""``sloserve bench gpu-report``: tables and plots from the files ``sloserve bench gpu`` wrote.

GPU time is scarce, so the GPU harness only records raw data (per-request
CSVs, engine-core step logs, run windows); everything derived is computed
here, on any machine, from the files committed under ``docs/benchmarks/data``.
Derived per run: the summary row (the simulator's metric definitions),
preemptions and KV usage from the step log, the scheduler's own time
(``schedule()`` + ``update_from_output()``) as a share of the step interval,
and stalls (a request's longest gap between tokens above 200 ms).

A report may combine several sessions' folders (GPU time comes in slices):
for the same policy and rate, the folder named later wins, so a rerun
replaces an earlier run without copying or deleting raw data.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

STALL_S = 0.2
"""Longest acceptable gap between two tokens of one request (issue 5: preemption stalls)."""


@dataclass(frozen=True, slots=True)
class StepStats:
    """What one run's slice of the engine-core step log says."""

    steps: int
    mean_step_interval_s: float
    mean_sched_s: float
    preemptions: int
    kv_usage: np.ndarray
    """Rows of (seconds since the run's start, KV usage)."""

    @property
    def sched_overhead(self) -> float:
        """Scheduler time as a share of the mean step interval."""
        return self.mean_sched_s / self.mean_step_interval_s if self.mean_step_interval_s else 0.0


def read_steps(path: Path) -> np.ndarray:
    """Step log as a float array with the log's header as field names."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as f:
        rows = list(csv.DictReader(f))
    names = list(rows[0]) if rows else []
    dtype = [(n, "f8") for n in names]
    return np.array([tuple(float(r[n]) for n in names) for r in rows], dtype=dtype)


def step_stats(steps: np.ndarray, start: float, end: float) -> StepStats:
    """Stats of the steps whose ``t_sched`` falls in ``[start, end]``."""
    window = steps[(steps["t_sched"] >= start) & (steps["t_sched"] <= end)]
    if window.size < 2:
        return StepStats(int(window.size), 0.0, 0.0, 0, np.zeros((0, 2)))
    intervals = np.diff(window["t_sched"])
    preempt = window["preempt_total"]
    return StepStats(
        steps=int(window.size),
        mean_step_interval_s=float(intervals.mean()),
        mean_sched_s=float(window["sched_s"].mean()),
        preemptions=int(preempt[-1] - preempt[0]),
        kv_usage=np.column_stack([window["t_sched"] - start, window["kv_usage"]]),
    )


def read_max_tbt(path: Path) -> np.ndarray:
    with path.open() as f:
        return np.array([float(r["max_tbt"]) for r in csv.DictReader(f)])


def _stem(path: Path) -> str:
    """File name without ``.csv``/``.csv.gz``; rates and tags may contain dots (16.75, r0.05)."""
    return path.name.removesuffix(".gz").removesuffix(".csv")


def load_runs(data_dir: Path) -> list[dict[str, Any]]:
    """Every run window (``runs*.json``) with its summary row and derived step/stall stats."""
    runs: list[dict[str, Any]] = []
    logs = {_stem(p): p for p in data_dir.glob("steps_*.csv*")}
    for runs_file in sorted(data_dir.glob("runs*.json")):
        windows = json.loads(runs_file.read_text())
        for w in windows:
            sched, rate = w["scheduler"], w["rate"]
            log_name = next(
                (
                    n
                    for n in logs
                    if n.startswith(f"steps_{sched}_")
                    and f"{rate:g}" in n.split("_")[-1].split("-")
                ),
                None,
            )
            stats = (
                step_stats(read_steps(logs[log_name]), w["start"], w["end"]) if log_name else None
            )
            max_tbt = read_max_tbt(data_dir / f"req_{sched}_{rate:g}.csv")
            row = {k: v for k, v in w.items() if k not in ("start", "end")}
            row["stalls_over_200ms"] = int((max_tbt > STALL_S).sum())
            row["max_tbt_p99"] = float(np.percentile(max_tbt, 99))
            if stats:
                row |= {
                    "preemptions": stats.preemptions,
                    "steps": stats.steps,
                    "mean_step_interval_ms": stats.mean_step_interval_s * 1e3,
                    "mean_sched_ms": stats.mean_sched_s * 1e3,
                    "sched_overhead": stats.sched_overhead,
                }
                row["_kv"] = stats.kv_usage
            runs.append(row)
    runs.sort(key=lambda r: (r["policy"], r["rate"]))
    return runs


def merge_runs(data_dirs: list[Path]) -> list[dict[str, Any]]:
    """Runs of every folder; a later folder's run replaces an earlier one of the same key."""
    merged: dict[tuple[str, float], dict[str, Any]] = {}
    for data_dir in data_dirs:
        for run in load_runs(data_dir):
            merged[(run["policy"], run["rate"])] = run | {"data": data_dir.name}
    return sorted(merged.values(), key=lambda r: (r["policy"], r["rate"]))


def markdown_table(runs: list[dict[str, Any]]) -> str:
    head = (
        "| policy | rate | attainment | TTFT p50 | TTFT p90 | TTFT p99 | TBT p50 | TBT p99 "
        "| preemptions | stalls > 200 ms | sched / step |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    lines = [
        f"| {r['policy']} | {r['rate']:g} | {r['slo_attainment']:.1%} | {r['ttft_p50']:.3f} s "
        f"| {r['ttft_p90']:.3f} s | {r['ttft_p99']:.3f} s | {r['tbt_p50'] * 1e3:.1f} ms "
        f"| {r['tbt_p99'] * 1e3:.1f} ms | {r.get('preemptions', '–')} | {r['stalls_over_200ms']} "
        f"| {r.get('sched_overhead', float('nan')):.2%} |"
        for r in runs
    ]
    return head + "\n".join(lines) + "\n"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        type=Path,
        nargs="+",
        required=True,
        help="folders bench gpu wrote; for the same policy and rate a later folder wins",
    )
    parser.add_argument("--plots", type=Path, help="write latency/attainment/KV plots here")
    parser.add_argument("--kv-rate", type=float, default=16.0, help="rate of the KV-usage plot")
    parser.add_argument("--profile", default="h200-llama-3.1-8b", help="cost model for the bound")
    parser.add_argument("--json", type=Path, help="write the merged report here")
    parser.add_argument("--prefix", default="gpu_azure-conv", help="file name prefix of the plots")


def run(args: argparse.Namespace) -> int:
    from ..sim import SimConfig, load_profile
    from ..sim.workload import WorkloadSpec, build_workload
    from .capacity import capacity_bound
    from .plots import write_plots
    from .sweep import max_rates

    runs = merge_runs(args.data)
    if not runs:
        print(f"no runs*.json in {' '.join(map(str, args.data))}")
        return 2
    kv = {f"{r['policy']} @ {r['rate']:g}": r.pop("_kv") for r in runs if "_kv" in r}
    kv = {k: v for k, v in kv.items() if k.endswith(f"@ {args.kv_rate:g}")}
    workload = build_workload(WorkloadSpec(requests=runs[0]["requests"], rate=args.kv_rate))
    bound = capacity_bound(workload, load_profile(args.profile), SimConfig(kv_tokens=97488)).rate
    report = {"runs": runs, "max_rate": max_rates(runs), "capacity_bound": bound}
    print(markdown_table(runs))
    print(f"max rate at >= 90% attainment: {report['max_rate']}; capacity bound {bound:.2f} req/s")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    if args.plots:
        report["config"] = {
            "trace": "azure-conv",
            "requests": runs[0]["requests"],
            "kv_tokens": 97488,
            "scheduling": "GPU H200 async",
            "slo_ttft_s": 1.0,
            "slo_tbt_s": 0.1,
        }
        for path in write_plots(report, args.plots, kv, prefix=args.prefix):
            print("wrote", path)
    return 0
