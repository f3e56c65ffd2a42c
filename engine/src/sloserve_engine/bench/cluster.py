"""``sloserve bench cluster``: placement policies × routers × state delay on simulated engines.

Every combination of the swept lists is one :func:`~sloserve_engine.sim.cluster.simulate_cluster`
replay of the same request list (per rate); runs are independent, so ``--jobs`` runs them
in worker processes. Rejections and time-outs count as misses in both attainment rules.
``--workload mixed-slo --mix F`` (:mod:`.workloads`) gives each request the interactive or
the batch SLO; every row then also reports per SLO class (:func:`per_class`,
:func:`class_summary`): whether admission sheds the lower class first.

Example::

    sloserve bench cluster --engines 4 --routers 1,4 --state-delay-ms 0,500 \\
        --placement random,least-kv,p2c,dynamo,slo-greedy,sloserve --trace azure-conv \\
        --rates 48,56,64 --json docs/benchmarks/data/cluster/conv.json --plots docs/benchmarks
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..contract.attainment import ratios
from ..contract.slo import SLO
from ..router.admission import Reason
from ..router.knobs import RouterKnobs
from ..router.placement import PLACEMENT_NAMES
from ..sim import SimConfig, load_profile
from ..sim.cluster import ClusterConfig, ClusterResult, RequestOutcome, simulate_cluster, verdict
from ..sim.workload import TRACES, WorkloadSpec, build_workload
from .capacity import capacity_bound
from .sweep import ATTAINMENT_GOAL, aggregate, format_spread, max_rates
from .workloads import add_slo_mix_arguments, slo_mix, workload_name

DEFAULT_MARGIN: float = RouterKnobs.model_fields["ttft_margin"].default
"""The router's own default: series at any other margin say so in their label."""
DEFAULT_KV_WAIT_RESERVED: bool = RouterKnobs.model_fields["kv_wait_reserved"].default
"""The router's own default ``kvWaitReserved``: series with the other value say so."""


@dataclass(frozen=True, slots=True)
class Case:
    """One cluster replay."""

    placement: str
    rate: float
    routers: int = 1
    state_delay_ms: float = 0.0
    shield: bool = True
    admission: bool = True
    ttft_margin: float = DEFAULT_MARGIN
    segment: int = 0
    """Which disjoint slice of the trace (``--segments``): same label, averaged over."""
    late_share: float = 0.0
    """The router's ``ttftMarginLateShare`` (``--margin-late-share``; 0: a fixed margin)."""
    kv_wait_reserved: bool = DEFAULT_KV_WAIT_RESERVED
    """The router's ``kvWaitReserved`` (``--kv-wait-reserved``)."""

    @property
    def label(self) -> str:
        """Series name: placement plus whatever differs from the default cluster."""
        parts = [self.placement]
        if not self.shield:
            parts.append("unshielded")
        if not self.admission:
            parts.append("no-admission")
        if self.ttft_margin != DEFAULT_MARGIN:
            parts.append(f"margin {self.ttft_margin:g}")
        if self.late_share:
            parts.append(f"late-share {self.late_share:g}")
        if self.kv_wait_reserved != DEFAULT_KV_WAIT_RESERVED:
            parts.append(f"kv-wait-reserved {'on' if self.kv_wait_reserved else 'off'}")
        if self.routers != 1 or self.state_delay_ms:
            parts.append(f"{self.routers}r/{self.state_delay_ms:g}ms")
        return " ".join(parts)


@dataclass(frozen=True, slots=True)
class Setup:
    """What every case of one sweep shares."""

    trace: str = "azure-conv"
    requests: int = 2000
    arrival: str = "trace"
    gamma_cv: float = 3.0
    seed: int = 0
    engines: int = 4
    regions: int = 2
    shield_delay_ms: float = 0.0
    kv_tokens: int = 97_488
    profile: str = "h200-llama-3.1-8b"
    slo_ttft_ms: float = 1000.0
    slo_tbt_ms: float = 100.0
    slo_mix: float | None = None
    """Share of interactive requests, the rest batch; ``None``: every request has the SLO above."""

    def workload(self, rate: float, segment: int = 0) -> WorkloadSpec:
        return WorkloadSpec(
            trace=self.trace,
            requests=self.requests,
            rate=rate,
            arrival=self.arrival,  # type: ignore[arg-type]
            gamma_cv=self.gamma_cv,
            seed=self.seed,
            segment=segment,
            slo_mix=self.slo_mix,
        )


WINDOWS = 4
"""Request-index windows the refusal rate is reported over (does learning cut it?)."""


def per_window(values: Sequence[float], windows: int = WINDOWS) -> list[float]:
    """Mean of ``values`` over ``windows`` consecutive, near-equal slices (request order)."""
    edges = np.linspace(0, len(values), windows + 1).astype(int)
    return [
        float(np.mean(values[a:b])) if b > a else math.nan for a, b in itertools.pairwise(edges)
    ]


def miss_causes(result: ClusterResult) -> dict[str, int]:
    """Misses split by whether any engine had room when the request arrived.

    ``cluster_full``: every engine's fresh predicted queue delay was already past the TTFT
    target, so no placement could have met it; ``room_somewhere``: some engine was within
    half the target, so a better placement (or admission) might have.
    """
    out = {"cluster_full": 0, "room_somewhere": 0, "in_between": 0}
    for o in result.outcomes:
        if verdict(o, result.slo).both or not o.queue_delays:
            continue
        slo = (o.slo or result.slo).ttft_s
        best = min(o.queue_delays)
        key = (
            "cluster_full" if best >= slo else "room_somewhere" if best < slo / 2 else "in_between"
        )
        out[key] += 1
    return out


def per_class(result: ClusterResult) -> dict[str, dict[str, Any]]:
    """Each SLO class's outcomes. Every request is served (it got its first token, and the
    replay checks it got all its tokens) or rejected with one reason, so per class
    ``served + rejected_total == requests``; attainment counts rejections as misses."""
    groups: dict[str, list[RequestOutcome]] = defaultdict(list)
    for o in result.outcomes:
        groups[(o.slo or result.slo).slo_class].append(o)
    out: dict[str, dict[str, Any]] = {}
    for name, outs in sorted(groups.items()):
        att = ratios([verdict(o, result.slo) for o in outs])
        rejected = Counter(o.rejected for o in outs if o.rejected is not None)
        ttft = [o.first_token - o.arrival for o in outs if o.first_token is not None]
        out[name] = {
            "requests": len(outs),
            "served": len(ttft),
            "slo_attainment": att.standard,
            "strict_attainment": att.strict,
            "rejected": dict(sorted(rejected.items())),
            "rejected_total": sum(rejected.values()),
            "ttft_p99": float(np.percentile(ttft, 99)) if ttft else math.nan,
        }
    return out


def record(case: Case, setup: Setup, result: ClusterResult) -> dict[str, Any]:
    """One row of the report (times in seconds)."""
    outs = result.outcomes
    slo = result.slo
    served = [o for o in outs if o.first_token is not None]
    ttft = np.array([o.first_token - o.arrival for o in served if o.first_token is not None])
    rejected: dict[str, int] = {}
    for o in outs:
        if o.rejected is not None:
            rejected[o.rejected] = rejected.get(o.rejected, 0) + 1
    verdicts = [verdict(o, slo) for o in outs]
    att = ratios(verdicts)
    finished = [v for o, v in zip(outs, verdicts, strict=True) if o.finish is not None]
    per = result.per_engine_served
    return {
        **asdict(case),
        "label": case.label,
        "policy": case.label,  # for max_rates()
        "trace": setup.trace,
        "arrival": setup.arrival,
        "requests": len(outs),
        "served": len(served),
        "slo_attainment": att.standard,
        "strict_attainment": att.strict,
        "ttft_p50": float(np.percentile(ttft, 50)) if ttft.size else math.nan,
        "ttft_p99": float(np.percentile(ttft, 99)) if ttft.size else math.nan,
        "rejected": rejected,
        "rejected_total": sum(rejected.values()),
        "missed_ttft": sum(1 for v in finished if not v.ttft),
        "missed_tbt_only": sum(1 for v in finished if v.ttft and not v.tbt),
        "shield_refusals": result.refusals,
        "refusals_per_1k": 1000.0 * result.refusals / len(outs),
        "refusals_per_1k_windows": [1000.0 * x for x in per_window([o.refusals for o in outs])],
        "attainment_windows": per_window([float(v.both) for v in verdicts]),
        "miss_causes": miss_causes(result),
        "queue_delay_spread_mean": float(
            np.mean([max(o.queue_delays) - min(o.queue_delays) for o in outs if o.queue_delays])
        ),
        "drain_s": max((o.finish for o in outs if o.finish is not None), default=0.0)
        - max(o.arrival for o in outs),
        "preemptions": result.preemptions,
        "served_per_engine": per,
        "imbalance": float((max(per) - min(per)) / max(float(np.mean(per)), 1.0)) if per else 0.0,
        "wall_seconds": result.wall_seconds,
        "per_class": per_class(result),
    }


def run_case(
    case: Case, setup: Setup, progress: Callable[[int], None] | None = None
) -> dict[str, Any]:
    """Replay one case (also the worker-process entry point)."""
    profile = load_profile(setup.profile)
    config = SimConfig(kv_tokens=setup.kv_tokens)
    slo = SLO(ttft_ms=setup.slo_ttft_ms, tbt_ms=setup.slo_tbt_ms)
    knobs = RouterKnobs.model_validate(
        {
            "placement": case.placement,
            "shield": case.shield,
            "admission": case.admission,
            "ttftMargin": case.ttft_margin,
            "ttftMarginLateShare": case.late_share,
            "kvWaitReserved": case.kv_wait_reserved,
        }
    )
    cluster = ClusterConfig(
        engines=setup.engines,
        routers=case.routers,
        state_delay_s=case.state_delay_ms / 1e3,
        regions=min(setup.regions, setup.engines),
        shield_delay_s=setup.shield_delay_ms / 1e3,
        seed=setup.seed,
    )
    requests = build_workload(setup.workload(case.rate, case.segment))
    result = simulate_cluster(requests, knobs, profile, config, slo, cluster, progress)
    return record(case, setup, result)


def cases(
    placements: Sequence[str],
    rates: Sequence[float],
    routers: Sequence[int],
    delays_ms: Sequence[float],
    shields: Sequence[bool],
    admissions: Sequence[bool],
    margins: Sequence[float] = (DEFAULT_MARGIN,),
    segments: Sequence[int] = (0,),
    late_shares: Sequence[float] = (0.0,),
    kv_waits: Sequence[bool] = (DEFAULT_KV_WAIT_RESERVED,),
) -> list[Case]:
    return [
        Case(p, r, m, d, s, a, g, k, ls, kw)
        for k, r, p, m, d, s, a, g, ls, kw in itertools.product(
            segments,
            rates,
            placements,
            routers,
            delays_ms,
            shields,
            admissions,
            margins,
            late_shares,
            kv_waits,
        )
    ]


def run_cases(
    todo: Sequence[Case],
    setup: Setup,
    jobs: int,
    done: Callable[[Case, dict[str, Any]], None],
) -> list[dict[str, Any]]:
    """Run every case, in ``jobs`` worker processes when > 1."""
    rows: list[dict[str, Any]] = []
    if jobs <= 1:
        for case in todo:
            row = run_case(case, setup)
            rows.append(row)
            done(case, row)
        return rows
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        futures = {pool.submit(run_case, case, setup): case for case in todo}
        for fut in as_completed(futures):
            row = fut.result()
            rows.append(row)
            done(futures[fut], row)
    return rows


CLASS_SPREAD_KEYS = ("slo_attainment", "strict_attainment", "ttft_p99")


def class_summary(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per series, rate and SLO class over the segments: mean, min and max of
    :data:`CLASS_SPREAD_KEYS`; mean requests, served and rejections (per reason); and
    ``shed_share``, the share of the class's rejections that were sheds (evicted from the
    full queue by a more important class)."""
    groups: dict[tuple[str, float, str], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        for name, c in r["per_class"].items():
            groups[(r["label"], r["rate"], name)].append(c)
    out: list[dict[str, Any]] = []
    for (label, rate, name), cs in sorted(groups.items()):
        row: dict[str, Any] = {"label": label, "rate": rate, "slo_class": name, "slices": len(cs)}
        for key in ("requests", "served", "rejected_total"):
            row[key] = float(np.mean([c[key] for c in cs]))
        for key in CLASS_SPREAD_KEYS:
            values = [c[key] for c in cs if not math.isnan(c[key])]
            row[key] = float(np.mean(values)) if values else math.nan
            row[f"{key}_min"] = min(values, default=math.nan)
            row[f"{key}_max"] = max(values, default=math.nan)
        reasons = sorted({k for c in cs for k in c["rejected"]})
        row["rejected"] = {
            k: float(np.mean([c["rejected"].get(k, 0) for c in cs])) for k in reasons
        }
        total = sum(c["rejected_total"] for c in cs)
        shed = sum(c["rejected"].get(str(Reason.SHED), 0) for c in cs)
        row["shed_share"] = shed / total if total else 0.0
        out.append(row)
    return out


def report(rows: list[dict[str, Any]], setup: Setup) -> dict[str, Any]:
    """Runs, their mean ± spread over segments, max rates, and the fluid capacity bound."""
    rows = sorted(rows, key=lambda r: (r["label"], r["rate"], r["segment"]))
    config = SimConfig(kv_tokens=setup.kv_tokens)
    profile = load_profile(setup.profile)
    bound = {
        k: setup.engines
        * capacity_bound(build_workload(setup.workload(1.0, k)), profile, config).rate
        for k in sorted({r["segment"] for r in rows})
    }
    return {
        "setup": asdict(setup),
        "workload": workload_name(setup.workload(1.0)),
        "goal": ATTAINMENT_GOAL,
        "capacity_bound": bound,
        "summary": aggregate(rows),
        "max_rate": max_rates(rows),
        "max_rate_strict": max_rates({**r, "slo_attainment": r["strict_attainment"]} for r in rows),
        "class_summary": class_summary(rows),
        "runs": rows,
    }


def table(rep: dict[str, Any]) -> Table:
    s = rep["setup"]
    t = Table(
        title=f"cluster: {s['engines']} engines, {rep['workload']} ({s['arrival']}), "
        f"{s['requests']} requests (times in s)"
    )
    for col in (
        "placement",
        "rate",
        "attain",
        "strict",
        "served",
        "rejected",
        "TTFT p50",
        "TTFT p99",
        "refusals/1k",
        "preempt",
        "imbalance",
    ):
        t.add_column(col, justify="right")
    for r in rep["runs"]:
        t.add_row(
            r["label"],
            f"{r['rate']:g}",
            f"{r['slo_attainment']:.1%}",
            f"{r['strict_attainment']:.1%}",
            f"{r['served']}/{r['requests']}",
            str(r["rejected_total"]),
            f"{r['ttft_p50']:.3f}",
            f"{r['ttft_p99']:.3f}",
            f"{r['refusals_per_1k']:.1f}",
            str(r["preemptions"]),
            f"{r['imbalance']:.2f}",
        )
    return t


def spread_table(rep: dict[str, Any]) -> Table:
    """Mean ± sample std (min–max) over the swept segments, per series and rate."""
    t = Table(title="over segments: mean ± std (min–max)")
    for col in ("placement", "rate", "slices", "attain", "TTFT p99 (s)", "drain (s)"):
        t.add_column(col, justify="right")
    for r in rep["summary"]:
        t.add_row(
            r["policy"],
            f"{r['rate']:g}",
            str(r["slices"]),
            format_spread(r, "slo_attainment", "{:.1%}"),
            format_spread(r, "ttft_p99", "{:.2f}"),
            format_spread(r, "drain_s", "{:.1f}"),
        )
    return t


def _mean_range(row: dict[str, Any], key: str, fmt: str) -> str:
    f = fmt.format
    return f"{f(row[key])} ({f(row[key + '_min'])}–{f(row[key + '_max'])})"


def class_table(rep: dict[str, Any]) -> Table:
    """:func:`class_summary` as a table: mean (min–max) over segments."""
    t = Table(title="per SLO class, over segments: mean (min–max); rejections are misses")
    for col in ("placement", "rate", "class", "slices", "attain", "strict", "served",
                "rejected (by reason)", "shed share", "TTFT p99 served (s)"):  # fmt: skip
        t.add_column(col, justify="right")
    for r in rep["class_summary"]:
        reasons = ", ".join(f"{k} {v:.1f}" for k, v in r["rejected"].items()) or "-"
        t.add_row(
            r["label"],
            f"{r['rate']:g}",
            r["slo_class"],
            str(r["slices"]),
            _mean_range(r, "slo_attainment", "{:.1%}"),
            _mean_range(r, "strict_attainment", "{:.1%}"),
            f"{r['served']:.1f}/{r['requests']:.1f}",
            f"{r['rejected_total']:.1f} ({reasons})",
            f"{r['shed_share']:.0%}",
            _mean_range(r, "ttft_p99", "{:.2f}"),
        )
    return t


def write_plots(rep: dict[str, Any], out_dir: Path, prefix: str) -> list[Path]:
    """Attainment and p99 TTFT against rate, one line per series; with more than one SLO
    class, the same per class (mean over segments, bars from min to max) in a second file."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    series: dict[str, list[dict[str, Any]]] = {}
    for r in rep["runs"]:
        series.setdefault(r["label"], []).append(r)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for label, runs in sorted(series.items()):
        runs.sort(key=lambda r: r["rate"])
        rates = [r["rate"] for r in runs]
        axes[0].plot(rates, [r["slo_attainment"] for r in runs], "o-", label=label)
        axes[1].plot(rates, [r["ttft_p99"] for r in runs], "o-", label=label)
    axes[0].axhline(ATTAINMENT_GOAL, color="grey", lw=0.8, ls="--")
    axes[0].set(xlabel="arrival rate (req/s)", ylabel="SLO attainment (rejections miss)")
    axes[1].set(xlabel="arrival rate (req/s)", ylabel="p99 TTFT of served requests (s)")
    axes[1].set_yscale("log")
    axes[0].legend(fontsize=7)
    s = rep["setup"]
    fig.suptitle(f"{s['engines']} simulated engines, {s['trace']} ({s['arrival']} arrivals)")
    fig.tight_layout()
    path = out_dir / f"{prefix}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    if s["slo_mix"] is None:
        return [path]
    return [path, _class_plot(rep, out_dir / f"{prefix}_classes.png")]


def _class_plot(rep: dict[str, Any], path: Path) -> Path:
    import matplotlib.pyplot as plt

    series: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rep["class_summary"]:
        series[f"{r['label']}: {r['slo_class']}"].append(r)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for label, rows in sorted(series.items()):
        rows.sort(key=lambda r: r["rate"])
        rates = [r["rate"] for r in rows]
        for ax, key in zip(axes, ("slo_attainment", "ttft_p99"), strict=True):
            mean, low, high = (
                np.array([r[k] for r in rows]) for k in (key, key + "_min", key + "_max")
            )
            ax.errorbar(
                rates,
                mean,
                yerr=np.stack([mean - low, high - mean]),
                fmt="o-",
                capsize=3,
                label=label,
            )
    axes[0].axhline(ATTAINMENT_GOAL, color="grey", lw=0.8, ls="--")
    axes[0].set(xlabel="arrival rate (req/s)", ylabel="SLO attainment per class (rejections miss)")
    axes[1].set(xlabel="arrival rate (req/s)", ylabel="p99 TTFT of served requests (s)")
    axes[1].set_yscale("log")
    axes[0].legend(fontsize=7)
    fig.suptitle(f"per SLO class, {rep['workload']}: mean over segments (bars: min-max)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ---------------------------------------------------------------------- CLI


def _csv(kind: Callable[[str], Any]) -> Callable[[str], list[Any]]:
    def parse(text: str) -> list[Any]:
        try:
            values = [kind(x.strip()) for x in text.split(",") if x.strip()]
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"bad list {text!r}: {exc}") from exc
        if not values:
            raise argparse.ArgumentTypeError("empty list")
        return values

    return parse


def _placement(name: str) -> str:
    if name not in PLACEMENT_NAMES:
        raise ValueError(f"unknown placement {name!r}; choose from {', '.join(PLACEMENT_NAMES)}")
    return name


def _onoff(text: str) -> bool:
    if text not in ("on", "off"):
        raise ValueError(f"expected on or off, got {text!r}")
    return text == "on"


def _positive(text: str) -> float:
    value = float(text)
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{text!r} must be a positive number")
    return value


def _non_negative(text: str) -> float:
    value = float(text)
    if not (value >= 0 and math.isfinite(value)):
        raise ValueError(f"{text!r} must be >= 0")
    return value


def _segment(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError(f"segment {text!r} must be >= 0")
    return value


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--engines", type=int, default=4)
    p.add_argument("--regions", type=int, default=2, help="shield regions (contiguous groups)")
    p.add_argument(
        "--shield-delay-ms",
        type=_non_negative,
        default=0.0,
        help="age of the state shields see (0: beside their engines, 10 Hz)",
    )
    p.add_argument("--routers", type=_csv(int), default=[1])
    p.add_argument("--state-delay-ms", type=_csv(_non_negative), default=[0.0])
    p.add_argument("--placement", type=_csv(_placement), default=list(PLACEMENT_NAMES))
    p.add_argument("--shield", type=_csv(_onoff), default=[True], help="on,off")
    p.add_argument("--admission", type=_csv(_onoff), default=[True], help="on,off")
    p.add_argument(
        "--ttft-margin",
        type=_csv(_positive),
        default=[DEFAULT_MARGIN],
        help="router ttftMargin values",
    )
    p.add_argument(
        "--margin-late-share",
        type=_csv(_non_negative),
        default=[0.0],
        help="router ttftMarginLateShare values (0: a fixed margin)",
    )
    p.add_argument(
        "--kv-wait-reserved",
        type=_csv(_onoff),
        default=[DEFAULT_KV_WAIT_RESERVED],
        help="router kvWaitReserved values: on,off",
    )
    p.add_argument("--rates", type=_csv(_positive), default=[48.0, 56.0, 64.0])
    p.add_argument("--trace", default="azure-conv", choices=sorted(TRACES))
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--arrival", choices=("auto", "trace", "poisson", "gamma"), default="auto")
    p.add_argument("--gamma-cv", type=float, default=3.0)
    add_slo_mix_arguments(p)
    p.add_argument("--kv-tokens", type=int, default=97_488)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--segments",
        type=_csv(_segment),
        default=[0],
        help="disjoint trace slices of --requests each (timed traces) or independent draws; "
        "results are averaged over them",
    )
    p.add_argument("--profile", default="h200-llama-3.1-8b")
    p.add_argument("--jobs", type=int, default=1, help="worker processes")
    p.add_argument("--json", type=Path, default=None, help="write the report here")
    p.add_argument("--plots", type=Path, default=None, help="write a PNG into this dir")
    p.add_argument("--name", default=None, help="plot file name (default cluster_<trace>)")


def setup_from_args(args: argparse.Namespace) -> Setup:
    arrival = args.arrival
    if arrival == "auto":
        arrival = "trace" if TRACES[args.trace][1] else "poisson"
    if args.engines < 1 or args.requests < 1:
        raise ValueError("--engines and --requests must be >= 1")
    return Setup(
        trace=args.trace,
        requests=args.requests,
        arrival=arrival,
        gamma_cv=args.gamma_cv,
        seed=args.seed,
        engines=args.engines,
        regions=max(1, min(args.regions, args.engines)),
        shield_delay_ms=args.shield_delay_ms,
        kv_tokens=args.kv_tokens,
        profile=args.profile,
        slo_mix=slo_mix(args),
    )


def run(args: argparse.Namespace, console: Console) -> int:
    setup = setup_from_args(args)
    todo = cases(
        args.placement,
        args.rates,
        args.routers,
        args.state_delay_ms,
        args.shield,
        args.admission,
        args.ttft_margin,
        args.segments,
        args.margin_late_share,
        args.kv_wait_reserved,
    )
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task(f"cluster replays ({setup.trace})", total=len(todo))

        def done(case: Case, row: dict[str, Any]) -> None:
            progress.advance(task)
            progress.console.print(
                f"  {case.label} @ {case.rate:g} (segment {case.segment}): "
                f"attainment {row['slo_attainment']:.1%}",
                highlight=False,
            )

        rows = run_cases(todo, setup, args.jobs, done)
    rep = report(rows, setup)
    console.print(table(rep))
    if len(args.segments) > 1:
        console.print(spread_table(rep))
    if setup.slo_mix is not None:
        console.print(class_table(rep))
    bound = ", ".join(f"segment {k}: {v:.1f}" for k, v in rep["capacity_bound"].items())
    console.print(f"fluid capacity bound of the cluster (req/s): {bound}")
    console.print(f"max rate with >= 90% attainment: {json.dumps(rep['max_rate'])}")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rep, indent=2) + "\n")
        console.print(f"wrote {args.json}")
    if args.plots is not None:
        name = args.name or f"cluster_{setup.trace}_{setup.arrival}"
        for path in write_plots(rep, args.plots, name):
            console.print(f"wrote {path}")
    return 0
