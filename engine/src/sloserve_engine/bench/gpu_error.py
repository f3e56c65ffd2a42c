"""``sloserve bench sim-error``: the simulator's error against every measured GPU run.

``sloserve bench fidelity`` checks stock vLLM only, against numbers copied into
:mod:`.fidelity`. This reads the merged report of ``sloserve bench gpu-report --json``
instead, so every policy, knob setting and rate that ran on the GPU is replayed in
the simulator with the settings of ``sloserve bench sim`` (azure-conv, trace
arrivals, 97,488 KV tokens, async scheduling, SLO 1 s / 100 ms) and compared.

A run label is ``<policy>[-<tag>]`` (``bench gpu --tag``); its knob overrides are the
row's ``knobs``. Rows that name their workload (trace, segment, seed, arrivals, SLO mix) and
engine settings (tuned stock's ``max_num_batched_tokens`` and
``long_prefill_token_threshold``) are replayed with them; older rows are azure-conv with
vLLM's defaults. Runs with vLLM's CPU KV offload connector are listed, not compared:
the simulator does not model the connector's host-memory transfers.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..contract.knobs import POLICY_NAMES, InvalidKnobsError, Knobs, parse_knobs
from ..contract.slo import SLO
from ..policy import make_policy
from ..sim.costmodel import DEFAULT_PROFILE, SimProfile, load_profile
from ..sim.engine import SimConfig
from ..sim.runner import replay
from ..sim.workload import WorkloadSpec, build_workload
from .fidelity import Case, Comparison
from .sweep import SweepRun, run_record

TARGETS: dict[str, float] = {
    "ttft_p50": 0.10,
    "ttft_p99": 0.20,
    "tbt_p50": 0.10,
    "tbt_p99": 0.20,
}
"""Issue 5's bound on |sim / GPU - 1| per latency number."""

TRACE = "azure-conv"
GPU_CONFIG = SimConfig(kv_tokens=97_488, scheduling="async")
"""What ``sloserve bench gpu`` ran with: its KV override and vLLM's default async scheduler."""
GPU_SLO = SLO(ttft_ms=1000, tbt_ms=100)


@dataclass(frozen=True, slots=True)
class GpuRun:
    """One measured run and what the simulator needs to replay it."""

    label: str
    policy: str
    rate: float
    requests: int
    knobs: Knobs
    not_modelled: str | None
    """Why the simulator cannot replay this run; ``None`` when it can."""
    workload: WorkloadSpec = field(default_factory=lambda: WorkloadSpec(trace=TRACE))
    """What the run replayed (trace, slice, arrivals, SLO mix), at its rate."""
    engine: SimConfig = GPU_CONFIG
    """The run's engine settings (tuned stock's chunked-prefill budget and threshold)."""
    slo: SLO = GPU_SLO


def not_modelled_reason(row: Mapping[str, Any]) -> str | None:
    """A run configuration the simulator has no model of, in words, or ``None``."""
    gib = row.get("kv_offloading_gib")
    if gib:
        return (
            f"vLLM's CPU KV offload connector ({float(gib):g} GiB host memory): "
            "the simulator does not model its transfers"
        )
    return None


def gpu_run(row: Mapping[str, Any]) -> GpuRun:
    """Policy and knobs of a report row: the label's part before the first ``-`` names the
    policy (``sloserve-r0.05`` -> ``sloserve``), the row's camelCase ``knobs`` override."""
    label = str(row["policy"])
    name = label.split("-", 1)[0]
    if name not in POLICY_NAMES:
        raise ValueError(
            f"run {label!r}: unknown policy {name!r}; choose from {', '.join(POLICY_NAMES)}"
        )
    try:
        knobs = parse_knobs({**row.get("knobs", {}), "policy": name})
    except InvalidKnobsError as exc:
        raise ValueError(f"run {label!r}: bad knobs: {exc}") from exc
    rate = float(row["rate"])
    workload = WorkloadSpec(
        trace=str(row.get("trace", TRACE)),
        requests=int(row["requests"]),
        rate=rate,
        arrival=row.get("arrival", "trace"),
        gamma_cv=float(row.get("gamma_cv", 3.0)),
        segment=int(row.get("segment", 0)),
        seed=int(row.get("seed", 0)),
        slo_mix=row.get("slo_mix"),
    )
    engine = replace(
        GPU_CONFIG,
        kv_tokens=int(row.get("kv_tokens", GPU_CONFIG.kv_tokens)),
        max_num_batched_tokens=int(
            row.get("max_num_batched_tokens", GPU_CONFIG.max_num_batched_tokens)
        ),
        long_prefill_token_threshold=int(row.get("long_prefill_token_threshold", 0)),
    )
    slo = SLO(
        ttft_ms=1000 * float(row.get("slo_ttft_s", GPU_SLO.ttft_s)),
        tbt_ms=1000 * float(row.get("slo_tbt_s", GPU_SLO.tbt_s)),
    )
    return GpuRun(
        label=label,
        policy=name,
        rate=rate,
        requests=int(row["requests"]),
        knobs=knobs,
        not_modelled=not_modelled_reason(row),
        workload=workload,
        engine=engine,
        slo=slo,
    )


def latency_errors(gpu: Mapping[str, Any], sim: Mapping[str, Any]) -> list[Comparison]:
    """sim / GPU - 1 for every latency number of :data:`TARGETS`, each against its bound."""
    case = Case("async", float(gpu["rate"]))
    return [
        Comparison(case, metric, float(gpu[metric]), float(sim[metric]), bound)
        for metric, bound in TARGETS.items()
    ]


def run_error(run: GpuRun, row: Mapping[str, Any], sim: Mapping[str, Any] | None) -> dict[str, Any]:
    """One ``runs`` entry of the report; ``sim`` is the replay's record of ``run``, ``None``
    if the run is not modelled."""
    entry: dict[str, Any] = {
        "label": run.label,
        "policy": run.policy,
        "rate": run.rate,
        "requests": run.requests,
        "knobs": dict(row.get("knobs", {})),
        "kv_offloading_gib": row.get("kv_offloading_gib"),
        "modelled": sim is not None,
        "reason": run.not_modelled,
    }
    if sim is None:
        return entry | {"gpu": {k: row.get(k) for k in (*TARGETS, "slo_attainment")}}
    entry["errors"] = {
        c.metric: {
            "gpu": c.gpu,
            "sim": c.sim,
            "error": c.rel_error,
            "target": c.tolerance,
            "ok": c.ok,
        }
        for c in latency_errors(row, sim)
    }
    for key in ("slo_attainment", "preemptions", "stalls_over_200ms"):
        entry[key] = {"gpu": row.get(key), "sim": sim[key]}
    entry["sim"] = dict(sim)
    return entry


def counts(runs: Sequence[Mapping[str, Any]]) -> tuple[int, int]:
    """(latency numbers within target, latency numbers compared)."""
    checks = [e["ok"] for r in runs if r["modelled"] for e in r["errors"].values()]
    return sum(checks), len(checks)


def error_report(
    rows: Sequence[Mapping[str, Any]],
    simulate: Callable[[GpuRun], Mapping[str, Any]],
    progress: Callable[[int, GpuRun, float], None] | None = None,
) -> dict[str, Any]:
    """Compare every GPU row with ``simulate(run)``; not-modelled runs are never simulated.

    ``progress(index, run, seconds)`` follows each row (0 s for a skipped one).
    """
    runs: list[dict[str, Any]] = []
    for i, row in enumerate(rows):
        run = gpu_run(row)
        t0 = time.perf_counter()
        sim = simulate(run) if run.not_modelled is None else None
        runs.append(run_error(run, row, sim))
        if progress is not None:
            progress(i, run, time.perf_counter() - t0)
    within, compared = counts(runs)
    return {"runs": runs, "within_target": within, "compared": compared, "targets": TARGETS}


def simulate(run: GpuRun, profile: SimProfile) -> dict[str, Any]:
    """Replay the run's workload the way ``sloserve bench sim`` does, with the run's knobs,
    slice and engine settings."""
    policy = make_policy(run.policy, run.knobs, profile.step)
    result = replay(build_workload(run.workload), policy, profile, run.engine, run.slo)
    return run_record(SweepRun(run.policy, run.rate, result, run.workload))


def _signed(x: float) -> str:
    return f"{x * 100:+.1f} %".replace("-", "−")


def _pair(gpu: Any, sim: Any, fmt: Callable[[Any], str]) -> str:
    return f"{'–' if gpu is None else fmt(gpu)} / {'–' if sim is None else fmt(sim)}"


def _share(x: Any) -> str:
    return f"{float(x) * 100:.1f} %"


def _knobs(entry: Mapping[str, Any]) -> str:
    knobs = [f"{k}={v}" for k, v in entry["knobs"].items()]
    if entry["kv_offloading_gib"]:
        knobs.append(f"offload {float(entry['kv_offloading_gib']):g} GiB")
    return ", ".join(knobs) or "defaults"


def markdown_table(report: Mapping[str, Any]) -> str:
    """Errors per run (out-of-target ones in bold), then the runs that were not compared."""
    lines = [
        "| run | rate | knobs | TTFT p50 | TTFT p99 | TBT p50 | TBT p99 "
        "| attainment (GPU / sim) | preemptions (GPU / sim) | stalls > 200 ms (GPU / sim) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    notes: list[str] = []
    for r in report["runs"]:
        head = f"| {r['label']} | {r['rate']:g} | {_knobs(r)} "
        if not r["modelled"]:
            attain = _pair(r["gpu"]["slo_attainment"], None, _share)
            lines.append(head + "| not modelled | – | – | – " + f"| {attain} | – | – |")
            notes.append(f"- {r['label']} @ {r['rate']:g} req/s not modelled: {r['reason']}.")
            continue
        errs = [
            _signed(e["error"]) if e["ok"] else f"**{_signed(e['error'])}**"
            for e in r["errors"].values()
        ]
        pre, stalls = r["preemptions"], r["stalls_over_200ms"]
        lines.append(
            head
            + "".join(f"| {e} " for e in errs)
            + f"| {_pair(r['slo_attainment']['gpu'], r['slo_attainment']['sim'], _share)} "
            + f"| {_pair(pre['gpu'], pre['sim'], str)} "
            + f"| {_pair(stalls['gpu'], stalls['sim'], str)} |"
        )
    return "\n".join(lines + (["", *notes] if notes else [])) + "\n"


def summary_line(report: Mapping[str, Any]) -> str:
    skipped = sum(1 for r in report["runs"] if not r["modelled"])
    return (
        f"{report['within_target']} of {report['compared']} numbers within target "
        f"(|sim / GPU − 1| ≤ 10 % on p50, ≤ 20 % on p99); {skipped} run(s) not modelled"
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--report", type=Path, required=True, help="merged report of `bench gpu-report --json`"
    )
    parser.add_argument("--json", type=Path, help="write the comparison here")
    parser.add_argument("--profile", default=DEFAULT_PROFILE, help="cost-model profile or JSON")


def run(args: argparse.Namespace) -> int:
    if not args.report.is_file():
        raise ValueError(f"no report at {args.report}")
    rows = json.loads(args.report.read_text()).get("runs")
    if not rows:
        raise ValueError(f"{args.report} has no runs")
    profile = load_profile(args.profile)

    def progress(i: int, run: GpuRun, seconds: float) -> None:
        done = "not modelled" if run.not_modelled else f"replayed in {seconds:.1f} s"
        print(f"[{i + 1}/{len(rows)}] {run.label} @ {run.rate:g} req/s: {done}", file=sys.stderr)

    report = error_report(rows, lambda r: simulate(r, profile), progress)
    report["config"] = {
        "report": str(args.report),
        "trace": TRACE,
        "arrival": "trace",
        "kv_tokens": GPU_CONFIG.kv_tokens,
        "scheduling": GPU_CONFIG.scheduling,
        "profile": profile.name,
        "slo_ttft_s": GPU_SLO.ttft_s,
        "slo_tbt_s": GPU_SLO.tbt_s,
    }
    print(markdown_table(report))
    print(summary_line(report))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0
