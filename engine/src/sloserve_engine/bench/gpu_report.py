"""``sloserve bench gpu-report``: tables and plots from the files ``sloserve bench gpu`` wrote.

GPU time is scarce, so the GPU harness only records raw data (per-request
CSVs, engine-core step logs, run windows); everything derived is computed
here, on any machine, from the files committed under ``docs/benchmarks/data``.
Recomputed per run from its per-request CSV with the contract's attainment rule
(:mod:`sloserve_engine.contract.attainment`): standard and strict attainment
(strict: each request's longest gap ≤ ``--stall-bound-ms``), per-SLO-class
attainment, TTFT percentiles, the drain after the last arrival, stalls; from the
step log: preemptions, KV usage and the scheduler's own time (``schedule()`` +
``update_from_output()``) as a share of the step interval. Only the TBT
percentiles over all gaps come from the run window (the CSV keeps each request's
longest gap, not every gap). Then, per workload: mean ± spread over segments and
seeds, max rate under the rule of :mod:`.sweep`, the capacity bound, and
``sloserve`` against the better of stock and tuned stock.

Folders written before these fields existed (no workload in the window, CSVs
named ``req_<label>_<rate>.csv``) are read as azure-conv, or as ``--trace``.

A report may combine several sessions' folders (GPU time comes in slices):
for the same workload, policy, rate, segment and seed, the folder named later
wins, so a rerun replaces an earlier run without copying or deleting raw data.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..contract.attainment import STALL_BOUND_MS_DEFAULT
from ..contract.slo import SLO
from ..sim.metrics import RequestTiming, summarize

RunKey = tuple[str, str, float, int, int]
"""(workload, policy, rate, segment, seed): one replay."""


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


def read_requests(path: Path) -> list[RequestTiming]:
    """A per-request CSV as the simulator's timings (each request with its own SLO when the
    CSV names one; older CSVs without ``n_tokens_seen`` count a request with a TTFT as done)."""
    out: list[RequestTiming] = []
    with path.open() as f:
        for r in csv.DictReader(f):
            arrival, ttft, n_out = float(r["arrival"]), float(r["ttft"]), int(r["n_out"])
            started = math.isfinite(ttft)
            seen = int(r["n_tokens_seen"]) if r.get("n_tokens_seen") else (n_out if started else 0)
            own = (
                SLO(
                    slo_class=r["slo_class"],
                    ttft_ms=float(r["ttft_slo_s"]) * 1000,
                    tbt_ms=float(r["tbt_slo_s"]) * 1000,
                )
                if r.get("slo_class")
                else None
            )
            out.append(
                RequestTiming(
                    arrival=arrival,
                    output_tokens=n_out,
                    first_token=arrival + ttft if started and seen else None,
                    finish=float(r["finish"]) if started and seen else None,
                    tokens_seen=seen,
                    max_gap=float(r["max_tbt"]),
                    slo=own if own is not None and own.slo_class != "standard" else None,
                )
            )
    return out


def recompute(timings: list[RequestTiming], slo: SLO, stall_bound_s: float) -> dict[str, Any]:
    """Every number the per-request CSV determines, by the contract's rule."""
    m = summarize(timings, np.zeros(0), slo, stall_bound_s)
    return {
        "requests": m.requests,
        "completed": m.completed,
        "slo_attainment": m.slo_attainment,
        "strict_attainment": m.strict_attainment,
        "class_attainment": {
            k: {"standard": v.standard, "strict": v.strict, "requests": v.requests}
            for k, v in m.class_attainment.items()
        },
        "ttft_p50": m.ttft_p50,
        "ttft_p90": m.ttft_p90,
        "ttft_p99": m.ttft_p99,
        "drain_s": m.drain_s,
        "max_tbt_p99": m.max_tbt_p99,
        "stalls_over_200ms": m.stalls_over_200ms,
    }


def _stem(path: Path) -> str:
    """File name without ``.csv``/``.csv.gz``; rates and tags may contain dots (16.75, r0.05)."""
    return path.name.removesuffix(".gz").removesuffix(".csv")


def _policy(label: str) -> str:
    """Stock vLLM is the ``vllm`` policy in every report (``stock-tuned`` -> ``vllm-tuned``)."""
    return "vllm" + label[len("stock") :] if label.startswith("stock") else label


def _legacy_step_log(logs: dict[str, Path], sched: str, rate: float) -> Path | None:
    name = next(
        (
            n
            for n in logs
            if n.startswith(f"steps_{sched}_") and f"{rate:g}" in n.split("_")[-1].split("-")
        ),
        None,
    )
    return logs[name] if name else None


def load_runs(
    data_dir: Path,
    trace: str = "azure-conv",
    stall_bound_s: float = STALL_BOUND_MS_DEFAULT / 1e3,
) -> list[dict[str, Any]]:
    """Every run window (``runs*.json``) with its numbers recomputed from its raw files."""
    runs: list[dict[str, Any]] = []
    logs = {_stem(p): p for p in data_dir.glob("steps_*.csv*")}
    for runs_file in sorted(data_dir.glob("runs*.json")):
        for w in json.loads(runs_file.read_text()):
            sched, rate = w["scheduler"], float(w["rate"])
            steps = w.get("steps_file")
            log = (
                data_dir / steps
                if steps and (data_dir / steps).exists()
                else (data_dir / f"{steps}.gz" if steps else _legacy_step_log(logs, sched, rate))
            )
            slo = SLO(
                ttft_ms=w.get("slo_ttft_s", 1.0) * 1000, tbt_ms=w.get("slo_tbt_s", 0.1) * 1000
            )
            req = data_dir / w.get("req_file", f"req_{sched}_{rate:g}.csv")
            row = {k: v for k, v in w.items() if k not in ("start", "end")}
            row |= {
                "policy": _policy(sched),
                "rate": rate,
                "workload": w.get("workload", trace),
                "trace": w.get("trace", trace),
                "arrival": w.get("arrival", "trace"),
                "segment": int(w.get("segment", 0)),
                "seed": int(w.get("seed", 0)),
            }
            row |= recompute(read_requests(req), slo, stall_bound_s)
            if log is not None and log.exists():
                stats = step_stats(read_steps(log), w["start"], w["end"])
                row |= {
                    "preemptions": stats.preemptions,
                    "steps": stats.steps,
                    "mean_step_interval_ms": stats.mean_step_interval_s * 1e3,
                    "mean_sched_ms": stats.mean_sched_s * 1e3,
                    "sched_overhead": stats.sched_overhead,
                }
                row["_kv"] = stats.kv_usage
            runs.append(row)
    runs.sort(key=_order)
    return runs


def run_key(run: dict[str, Any]) -> RunKey:
    return (run["workload"], run["policy"], run["rate"], run["segment"], run["seed"])


def _order(run: dict[str, Any]) -> tuple[Any, ...]:
    return (run["workload"], run["policy"], run["rate"], run["segment"], run["seed"])


def merge_runs(
    data_dirs: list[Path],
    trace: str = "azure-conv",
    stall_bound_s: float = STALL_BOUND_MS_DEFAULT / 1e3,
) -> list[dict[str, Any]]:
    """Runs of every folder; a later folder's run replaces an earlier one of the same key."""
    merged: dict[RunKey, dict[str, Any]] = {}
    for data_dir in data_dirs:
        for run in load_runs(data_dir, trace, stall_bound_s):
            merged[run_key(run)] = run | {"data": data_dir.name}
    return sorted(merged.values(), key=_order)


def _pct(x: float | None) -> str:
    return "–" if x is None or math.isnan(x) else f"{x:.1%}"


def _s(x: float) -> str:
    return "∞" if math.isinf(x) else f"{x:.3f} s"


def markdown_table(runs: list[dict[str, Any]]) -> str:
    """One row per replay (standard and strict attainment recomputed from its CSV)."""
    head = (
        "| workload | policy | rate | slice | attainment | strict | TTFT p50 | TTFT p90 "
        "| TTFT p99 | TBT p50 | TBT p99 | drain | preemptions | stalls > 200 ms | sched / step |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    lines = [
        f"| {r['workload']} | {r['policy']} | {r['rate']:g} | g{r['segment']} s{r['seed']} "
        f"| {_pct(r['slo_attainment'])} | {_pct(r['strict_attainment'])} "
        f"| {_s(r['ttft_p50'])} | {_s(r['ttft_p90'])} | {_s(r['ttft_p99'])} "
        f"| {r['tbt_p50'] * 1e3:.1f} ms | {r['tbt_p99'] * 1e3:.1f} ms | {_s(r['drain_s'])} "
        f"| {r.get('preemptions', '–')} | {r['stalls_over_200ms']} "
        f"| {_pct(r['sched_overhead']) if 'sched_overhead' in r else '–'} |"
        for r in runs
    ]
    return head + "\n".join(lines) + "\n"


def summary_table(summary: list[dict[str, Any]]) -> str:
    from .sweep import format_spread

    """Mean ± sample std (min–max) over segments and seeds, and per SLO class."""
    classes = sorted({c for r in summary for c in r["class_attainment"]})
    head = (
        "| workload | policy | rate | slices | attainment | strict | TTFT p99 "
        + "| counts for max rate "
        + "".join(f"| {c} attainment / strict " for c in classes)
        + "|\n|"
        + "---|" * (8 + len(classes))
        + "\n"
    )

    def spread(r: dict[str, Any], key: str, pct: bool) -> str:
        fmt = "{:.1%}" if pct else "{:.2f} s"
        return fmt.format(r[key]) if r["slices"] == 1 else format_spread(r, key, fmt)

    lines = []
    for r in summary:
        cells = [
            r["workload"],
            r["policy"],
            f"{r['rate']:g}",
            str(r["slices"]),
            spread(r, "slo_attainment", True),
            spread(r, "strict_attainment", True),
            spread(r, "ttft_p99", False),
            "yes" if r["counts"] else "no",
            *(
                f"{r['class_attainment'][c]['standard']:.1%} / "
                f"{r['class_attainment'][c]['strict']:.1%}"
                if c in r["class_attainment"]
                else "–"
                for c in classes
            ),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return head + "\n".join(lines) + "\n"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        type=Path,
        nargs="+",
        required=True,
        help="folders bench gpu wrote; for the same run key a later folder wins",
    )
    parser.add_argument(
        "--trace",
        default="azure-conv",
        help="workload of folders whose run windows do not name one (written before 2026-12-03)",
    )
    parser.add_argument(
        "--stall-bound-ms",
        type=float,
        default=STALL_BOUND_MS_DEFAULT,
        help="strict attainment: longest acceptable gap between two tokens",
    )
    parser.add_argument("--plots", type=Path, help="write latency/attainment/KV plots here")
    parser.add_argument("--kv-rate", type=float, default=16.0, help="rate of the KV-usage plot")
    parser.add_argument("--profile", default="h200-llama-3.1-8b", help="cost model for the bound")
    parser.add_argument("--json", type=Path, help="write the merged report here")
    parser.add_argument("--markdown", type=Path, help="write the tables here")
    parser.add_argument("--prefix", default="gpu_azure-conv", help="file name prefix of the plots")


def capacity_bounds(runs: list[dict[str, Any]], profile_name: str) -> dict[str, float]:
    """Per workload, the fluid bound over the requests of all its replayed slices."""
    from ..sim import SimConfig, load_profile
    from ..sim.workload import WorkloadSpec, build_workload
    from .capacity import capacity_bound

    profile = load_profile(profile_name)
    by_workload: dict[str, dict[tuple[int, int], dict[str, Any]]] = {}
    for r in runs:
        by_workload.setdefault(r["workload"], {})[(r["segment"], r["seed"])] = r
    out: dict[str, float] = {}
    for workload, slices in by_workload.items():
        requests = []
        for r in slices.values():
            spec = WorkloadSpec(
                trace=r["trace"],
                requests=int(r["requests"]),
                rate=float(r["rate"]),
                arrival=r["arrival"],
                gamma_cv=float(r.get("gamma_cv", 3.0)),
                segment=r["segment"],
                seed=r["seed"],
            )
            requests += build_workload(spec)
        config = SimConfig(
            kv_tokens=int(next(iter(slices.values())).get("kv_tokens", 97_488)),
            max_num_batched_tokens=8192,
        )
        out[workload] = capacity_bound(requests, profile, config).rate
    return out


def build_report(runs: list[dict[str, Any]], profile: str) -> dict[str, Any]:
    from .sweep import aggregate, max_rates, versus_baseline

    summary = aggregate(runs)
    report: dict[str, Any] = {
        "runs": runs,
        "summary": summary,
        "capacity_bound": capacity_bounds(runs, profile),
        "by_workload": {},
    }
    for workload in sorted({r["workload"] for r in runs}):
        mine = [r for r in runs if r["workload"] == workload]
        report["by_workload"][workload] = {
            "max_rate": max_rates(mine),
            "max_rate_strict": max_rates(mine, key="strict_attainment"),
            "versus_baseline": {
                key: versus_baseline([s for s in summary if s["workload"] == workload], key=key)
                for key in ("slo_attainment", "strict_attainment")
            },
        }
    return report


def report_markdown(report: dict[str, Any]) -> str:
    """Every table of a GPU report, regenerated from the raw data."""
    parts = ["### Runs\n", markdown_table(report["runs"]), "\n### Over slices\n"]
    parts.append(summary_table(report["summary"]))
    parts.append("\n### Max rate and baselines\n")
    parts.append(
        "| workload | max rate (standard) | max rate (strict) | capacity bound "
        "| better baseline (strict) | sloserve / it (strict) |\n|---|---|---|---|---|---|\n"
    )
    for workload, w in report["by_workload"].items():
        vs = w["versus_baseline"]["strict_attainment"]
        ratio = vs.get("max_rate_ratio")
        parts.append(
            f"| {workload} | {_rates(w['max_rate'])} | {_rates(w['max_rate_strict'])} "
            f"| {report['capacity_bound'][workload]:.2f} req/s "
            f"| {vs.get('better_baseline') or '–'} "
            f"| {'–' if ratio is None else f'{ratio:.2f} ×'} |\n"
        )
    return "".join(parts)


def _rates(rates: dict[str, float | None]) -> str:
    return ", ".join(f"{p} {'–' if r is None else f'{r:g}'}" for p, r in sorted(rates.items()))


def run(args: argparse.Namespace) -> int:
    from .plots import write_plots

    runs = merge_runs(args.data, args.trace, args.stall_bound_ms / 1e3)
    if not runs:
        print(f"no runs*.json in {' '.join(map(str, args.data))}")
        return 2
    kv = {
        f"{r['policy']} @ {r['rate']:g}": r.pop("_kv")
        for r in runs
        if "_kv" in r and r["segment"] == 0 and r["seed"] == 0
    }
    kv = {k: v for k, v in kv.items() if k.endswith(f"@ {args.kv_rate:g}")}
    for r in runs:
        r.pop("_kv", None)
    report = build_report(runs, args.profile)
    text = report_markdown(report)
    print(text)
    if args.markdown:
        args.markdown.write_text(text)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    if args.plots:
        workload = runs[0]["workload"]
        plotted = {
            "runs": [s for s in report["summary"] if s["workload"] == workload],
            "capacity_bound": report["capacity_bound"][workload],
            "config": {
                "trace": workload,
                "requests": runs[0]["requests"],
                "kv_tokens": 97488,
                "scheduling": "GPU H200 async",
                "slo_ttft_s": 1.0,
                "slo_tbt_s": 0.1,
            },
        }
        for path in write_plots(plotted, args.plots, kv, prefix=args.prefix):
            print("wrote", path)
    return 0
