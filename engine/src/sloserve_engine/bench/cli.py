"""``sloserve bench``: simulated sweeps (``sim``), simulator ``speed``, cost-model ``fit``,
real-vLLM replays on a GPU (``gpu``, the lead's :mod:`sloserve_engine.bench.gpu`), and
the simulator's error against every GPU run (``sim-error``).

Examples::

    sloserve bench sim --trace azure-conv --requests 1500 --kv-tokens 97488 \\
        --rates 10,16,22 --policies vllm,sloserve --json out.json --plots docs/benchmarks
    sloserve bench cluster --engines 4 --routers 1,4 --state-delay-ms 0,500 --rates 48,56,64
    sloserve bench speed --rate 16
    sloserve bench fit --steps-dir DIR   # DIR: steps_*.csv from `sloserve bench gpu`
    sloserve bench sim-error --report docs/benchmarks/data/gpu-2026-11-21c/report.json
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..contract.knobs import POLICY_NAMES


def _floats(text: str) -> list[float]:
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from exc
    if not values or any(v <= 0 or not math.isfinite(v) for v in values):
        raise argparse.ArgumentTypeError("rates must be positive numbers")
    return values


def _policies(text: str, known: tuple[str, ...] = POLICY_NAMES) -> list[str]:
    names = [x.strip() for x in text.split(",") if x.strip()]
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown policy {', '.join(unknown) or '(none)'}; choose from {', '.join(known)}"
        )
    return names


def _sim_policies(text: str) -> list[str]:
    """Policies, plus ``vllm-tuned``: stock vLLM with the tuned-stock engine settings."""
    from .sweep import TUNED_STOCK_NAME

    return _policies(text, (*POLICY_NAMES, TUNED_STOCK_NAME))


def _add_engine_args(p: argparse.ArgumentParser) -> None:
    from .workloads import add_workload_arguments

    add_workload_arguments(p)
    p.add_argument("--kv-tokens", type=int, default=97_488)
    p.add_argument("--scheduling", choices=("async", "sync"), default="async")
    p.add_argument(
        "--max-num-batched-tokens",
        type=int,
        default=8192,
        help="vLLM's step token budget (chunked-prefill budget)",
    )
    p.add_argument(
        "--long-prefill-token-threshold",
        type=int,
        default=0,
        help="vLLM's cap on one request's prefill chunk per step (0 = none, vLLM's default)",
    )
    p.add_argument("--profile", default="h200-llama-3.1-8b", help="cost-model profile or JSON")


def _sim_config(args: argparse.Namespace) -> Any:
    from ..sim import SimConfig

    return SimConfig(
        kv_tokens=args.kv_tokens,
        scheduling=args.scheduling,
        max_num_batched_tokens=args.max_num_batched_tokens,
        long_prefill_token_threshold=args.long_prefill_token_threshold,
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(
        dest="bench",
        required=True,
        metavar="{sim,cluster,speed,fidelity,sim-error,fit,gpu,gpu-report,router}",
    )
    sim = sub.add_parser("sim", help="simulated rate sweep per policy")
    _add_engine_args(sim)
    sim.add_argument("--rates", type=_floats, default=[10.0, 16.0, 22.0])
    sim.add_argument(
        "--policies",
        type=_sim_policies,
        default=list(POLICY_NAMES),
        help="named policies and vllm-tuned (stock vLLM with the tuned chunked-prefill knobs)",
    )
    sim.add_argument("--slo-ttft-ms", type=float, default=1000.0)
    sim.add_argument("--slo-tbt-ms", type=float, default=100.0)
    sim.add_argument("--json", type=Path, default=None, help="write the report here")
    sim.add_argument("--plots", type=Path, default=None, help="write PNG plots into this dir")
    sim.add_argument(
        "--markdown", type=Path, default=None, help="write the over-slices table and verdicts here"
    )
    from . import cluster

    cluster.add_arguments(
        sub.add_parser("cluster", help="placement policies on N simulated engines × M routers")
    )
    speed = sub.add_parser("speed", help="replay speed and per-step policy decision cost")
    _add_engine_args(speed)
    speed.add_argument("--rate", type=float, default=16.0)
    speed.add_argument("--policies", type=_policies, default=list(POLICY_NAMES))
    speed.add_argument("--running", type=int, default=256, help="running requests for decisions")
    speed.add_argument("--repeat", type=int, default=3, help="replays per policy (best counts)")
    fidelity = sub.add_parser("fidelity", help="simulated replays vs the GPU runs")
    fidelity.add_argument("--profile", default="h200-llama-3.1-8b")
    fidelity.add_argument(
        "--reference",
        choices=("gpu-readme", "gpu-2026-11-21", "gpu-2026-12-03"),
        default="gpu-readme",
        help="GPU runs to compare with: the shared baseline, the 2026-11-21 re-run, "
        "or the 2026-12-03 session (azure-code and azure-conv, stock and sloserve)",
    )
    from . import fit, gpu_error

    gpu_error.add_arguments(
        sub.add_parser("sim-error", help="simulator error against every run of a GPU report")
    )
    fit.add_arguments(sub.add_parser("fit", help="fit the step-time cost model to GPU logs"))
    from . import gpu as bench_gpu  # imports vLLM only when it runs

    bench_gpu.add_arguments(sub.add_parser("gpu", help="replay on real vLLM (needs a GPU)"))
    from . import gpu_report

    gpu_report.add_arguments(sub.add_parser("gpu-report", help="tables and plots of a GPU run"))
    from . import router as bench_router

    bench_router.add_arguments(
        sub.add_parser("router", help="engines and routers as real processes over HTTP")
    )


def _table(report: dict[str, Any]) -> Table:
    table = Table(title="simulated sweep (times in seconds unless noted)")
    for col in (
        "policy",
        "rate",
        "slice",
        "done",
        "TTFT p50",
        "TTFT p90",
        "TTFT p99",
        "TBT p50 ms",
        "TBT p99 ms",
        "attain",
        "strict",
        "drain s",
        "gaps>SLO",
        "max-TBT p99",
        "stalls>200ms",
        "preempt",
        "KV max",
        "× real time",
    ):
        table.add_column(col, justify="right")
    for r in report["runs"]:
        table.add_row(
            r["policy"],
            f"{r['rate']:g}",
            f"{r['segment']}/{r['seed']}",
            f"{r['completed']}/{r['requests']}",
            f"{r['ttft_p50']:.3f}",
            f"{r['ttft_p90']:.3f}",
            f"{r['ttft_p99']:.3f}",
            f"{r['tbt_p50'] * 1e3:.1f}",
            f"{r['tbt_p99'] * 1e3:.1f}",
            f"{r['slo_attainment']:.1%}",
            f"{r['strict_attainment']:.1%}",
            f"{r['drain_s']:.1f}",
            f"{r['stall_rate']:.2%}",
            f"{r['max_tbt_p99']:.3f}",
            str(r["stalls_over_200ms"]),
            str(r["preemptions"]),
            f"{r['kv_usage_max']:.0%}",
            f"{r['speedup_vs_real_time']:.0f}",
        )
    return table


def _summary_table(report: dict[str, Any]) -> Table:
    """Mean ± sample standard deviation over segments and seeds, per policy and rate."""
    from .sweep import format_spread

    table = Table(title="over segments and seeds: mean ± std (min–max)")
    classes = sorted({c for r in report["summary"] for c in r["class_attainment"]})
    for col in ("policy", "rate", "slices", "attain", "strict", "TTFT p99", "drain s", "counts"):
        table.add_column(col, justify="right")
    for c in classes:
        table.add_column(f"{c} attain / strict", justify="right")
    for r in report["summary"]:

        def pm(key: str, pct: bool, r: dict[str, Any] = r) -> str:
            return format_spread(r, key, "{:.1%}" if pct else "{:.2f}")

        table.add_row(
            r["policy"],
            f"{r['rate']:g}",
            str(r["slices"]),
            pm("slo_attainment", True),
            pm("strict_attainment", True),
            pm("ttft_p99", False),
            pm("drain_s", False),
            "yes" if r["counts"] else "no",
            *(
                f"{r['class_attainment'][c]['standard']:.1%} / "
                f"{r['class_attainment'][c]['strict']:.1%}"
                if c in r["class_attainment"]
                else "–"
                for c in classes
            ),
        )
    return table


def sim_markdown(report: dict[str, Any]) -> str:
    """The over-slices table, max rates under the drain/p99 rule, and sloserve against the
    better of stock and tuned stock, as ``gpu-report`` prints them for GPU runs."""
    from .gpu_report import summary_table
    from .sweep import versus_baseline

    rule = report["max_rate_rule"]
    lines = [
        summary_table(report["summary"]),
        f"\nMax rate at >= {rule['goal']:.0%} (every request done <= {rule['drain_bound_s']:g} s "
        f"after the last arrival, p99 TTFT <= {rule['ttft_p99_bound_s']:g} s): standard "
        f"{json.dumps(report['max_rate'])}, strict {json.dumps(report['max_rate_strict'])}; "
        f"capacity bound {report['capacity_bound']:.2f} req/s.\n",
    ]
    lines.append(
        "\n| metric | better baseline | its max rate | sloserve max rate | ratio "
        "| baseline < 90 % first at | baseline there | sloserve there |\n"
        "|---|---|---|---|---|---|---|---|\n"
    )
    for key in ("slo_attainment", "strict_attainment"):
        vs = versus_baseline(report["summary"], key=key)
        if not vs:
            continue
        better = vs["better_baseline"]

        def cell(x: Any, fmt: str) -> str:
            return "–" if x is None else fmt.format(x)

        name = "strict" if key == "strict_attainment" else "standard"
        lines.append(
            f"| {name} | {better} | {cell(vs['max_rate'][better], '{:g}')} "
            f"| {cell(vs['max_rate']['sloserve'], '{:g}')} "
            f"| {cell(vs['max_rate_ratio'], '{:.2f} ×')} "
            f"| {cell(vs['baseline_below_goal_at'], '{:g}')} "
            f"| {cell(vs['baseline_at_that_rate'], '{:.1%}')} "
            f"| {cell(vs['policy_at_that_rate'], '{:.1%}')} |\n"
        )
    return "".join(lines)


def _run_sim(args: argparse.Namespace, console: Console) -> int:
    from ..contract.slo import SLO
    from ..sim import load_profile
    from .plots import write_plots
    from .sweep import run_sweep, sweep_report
    from .workloads import workload_specs

    profile = load_profile(args.profile)
    config = _sim_config(args)
    slo = SLO(ttft_ms=args.slo_ttft_ms, tbt_ms=args.slo_tbt_ms)
    workloads = workload_specs(args, args.rates[0])
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        tasks: dict[tuple[str, float], Any] = {}

        def tick(policy: str, rate: float, finished: int) -> None:
            key = (policy, rate)
            if key not in tasks:
                total = args.requests * len(workloads)
                tasks[key] = progress.add_task(f"{policy} @ {rate:g} req/s", total=total)
            progress.advance(tasks[key], finished)

        runs = run_sweep(args.policies, args.rates, workloads, profile, config, slo, tick)
    report = sweep_report(runs, workloads, profile, config, slo)
    console.print(_table(report))
    if len(workloads) > 1:
        console.print(_summary_table(report))
    rule = report["max_rate_rule"]
    console.print(
        f"capacity bound (fluid, {args.scheduling}): {report['capacity_bound']:.2f} req/s; "
        f"max rate with >= 90% attainment (every request done <= {rule['drain_bound_s']:g} s "
        f"after the last arrival, p99 TTFT <= {rule['ttft_p99_bound_s']:g} s): "
        f"standard {json.dumps(report['max_rate'])}, strict {json.dumps(report['max_rate_strict'])}"
    )
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        console.print(f"wrote {args.json}")
    if args.markdown is not None:
        args.markdown.write_text(sim_markdown(report))
        console.print(f"wrote {args.markdown}")
    if args.plots is not None:
        top = max(args.rates)
        kv = {
            f"{r.policy} @ {r.rate:g}": r.result.kv_usage
            for r in runs
            if r.rate == top and r.workload == replace(workloads[0], rate=top)
        }
        for path in write_plots({**report, "runs": report["summary"]}, args.plots, kv):
            console.print(f"wrote {path}")
    return 0


def _run_speed(args: argparse.Namespace, console: Console) -> int:
    from ..sim import load_profile
    from .speed import decision_cost, replay_speed
    from .workloads import workload_specs

    profile = load_profile(args.profile)
    config = _sim_config(args)
    table = Table(title=f"simulator speed ({args.requests} requests at {args.rate:g} req/s)")
    for col in (
        "policy",
        "wall s",
        "simulated s",
        "× real time",
        "steps",
        "µs/step",
        f"decision µs @ {args.running} running",
    ):
        table.add_column(col, justify="right")
    for name in args.policies:
        workload = workload_specs(args, args.rate)[0]
        speed = replay_speed(name, workload, profile, config, args.repeat)
        cost = decision_cost(name, profile, args.running)
        table.add_row(
            name,
            f"{speed.wall_s:.2f}",
            f"{speed.simulated_s:.1f}",
            f"{speed.simulated_s / speed.wall_s:.0f}",
            str(speed.steps),
            f"{speed.wall_s / speed.steps * 1e6:.0f}",
            f"{cost * 1e6:.0f}",
        )
    console.print(table)
    return 0


def _run_fidelity(args: argparse.Namespace, console: Console) -> int:
    from ..sim import load_profile
    from .fidelity import REFERENCES, compare

    profile = load_profile(args.profile)
    table = Table(title=f"simulated replays vs H200 runs ({args.reference})")
    for col in ("run", "metric", "GPU", "sim", "error", "tolerance", ""):
        table.add_column(col, justify="right")
    failed = 0
    for case in sorted(REFERENCES[args.reference]):
        for c in compare(case, profile, args.reference):
            failed += not c.ok
            if c.metric == "slo_attainment":
                gpu = f"{c.gpu:.1%}"
                if c.spread:
                    gpu += f" (runs {c.spread[0]:.1%}-{c.spread[1]:.1%})"
                sim, err, tol = f"{c.sim:.1%}", f"{100 * (c.sim - c.gpu):+.1f} pt", "3 pt"
            else:
                gpu, sim, err = f"{c.gpu:.4g}", f"{c.sim:.4g}", f"{c.rel_error:+.1%}"
                tol = f"{c.tolerance:.0%}"
            table.add_row(
                case.label, c.metric, gpu, sim, err, tol, "ok" if c.ok else "[red]off[/red]"
            )
    console.print(table)
    console.print(f"{failed} comparisons outside tolerance")
    return 0


def run(args: argparse.Namespace) -> int:
    console = Console()
    try:
        return _dispatch(args, console)
    except ValueError as exc:  # bad workload, profile or engine settings: say which
        console.print(f"[red]sloserve bench {args.bench}: {exc}[/red]")
        return 2


def _dispatch(args: argparse.Namespace, console: Console) -> int:
    if args.bench == "fidelity":
        return _run_fidelity(args, console)
    if args.bench == "sim":
        return _run_sim(args, console)
    if args.bench == "cluster":
        from . import cluster

        return cluster.run(args, console)
    if args.bench == "speed":
        return _run_speed(args, console)
    if args.bench == "gpu":
        from . import gpu as bench_gpu

        return bench_gpu.run(args)
    if args.bench == "sim-error":
        from . import gpu_error

        return gpu_error.run(args)
    if args.bench == "gpu-report":
        from . import gpu_report

        return gpu_report.run(args)
    if args.bench == "router":
        from . import router as bench_router

        return bench_router.run(args)
    from . import fit

    return fit.run(args)
