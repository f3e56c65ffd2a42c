"""Autoscaler benchmark: our autoscaler vs an HPA-style KV-usage baseline, same trace, same run.

    python -m sloserve_dev.autoscaler.bench --capacity-rps 11 --time-scale 2 --out DIR

Runs the closed-loop harness (``harness.py``: real simulated engines as processes, no
Kubernetes) once per controller on one seeded load trace, then writes ``episodes.json``,
``summary.json`` and a plot. All times are modelled seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import signal
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from sloserve_engine.contract.slo import SLO
from sloserve_operator.api import v1alpha1 as api
from sloserve_operator.autoscaler.spec import policy_from_spec

from .harness import (
    DecisionLog,
    Episode,
    KvUsageBaseline,
    Row,
    RunConfig,
    ScalingController,
    SloAutoscaler,
    run_episode,
)
from .loadgen import Served
from .trace import Phase, Workload, arrivals

BUCKET_S = 10.0
"""Attainment of the requests finished in each bucket decides whether it was a violation."""

LOAD_BUCKET_S = 20.0
"""Sent and planned requests are compared per bucket of this many modelled seconds."""


@dataclass(frozen=True)
class LoadBucket:
    """Requests the plan had, and the load generator sent, in ``[t, t + LOAD_BUCKET_S)``."""

    t: float
    planned: int
    sent: int


@dataclass(frozen=True)
class Summary:
    controller: str
    reaction_from_step_s: float | None
    """Load step -> first scale-up decision."""
    reaction_from_violation_s: float | None
    """Windowed attainment first below target -> first scale-up decision (< 0: before it)."""
    recovery_s: float | None
    """Windowed attainment first below target -> back at or above target."""
    violation_minutes: float
    """Minutes whose finished requests (10 s buckets) attained less than the target."""
    attainment: float | None
    """Share of all finished requests that met their SLO."""
    replica_minutes: float
    peak_replicas: int
    scale_down_after_drop_s: float | None
    flaps: int
    """a -> b -> a -> b patterns in the replica sequence."""
    decisions: int
    turned_away: float = 0.0
    """Requests the routers rejected, timed out or had no engine for (all counted as missed)."""
    cold_start_s: float | None = None
    """Longest wake from zero the autoscaler measured (scale-up to first request served)."""
    client_errors: int = 0
    """Requests that failed at the client without a router counting them as turned away (no
    connection, 502 from an engine that failed mid-answer): misses nobody else counted, added
    to ``violation_minutes`` and ``attainment``."""
    client_latency_p50_s: float | None = None
    """End-to-end latency at the client of the answered (200) requests, median and p99."""
    client_latency_p99_s: float | None = None
    client_attainment: float | None = None
    """Share of all requests answered within the SLO's end-to-end bound at the client
    (:func:`e2e_bound_s`): what the clients saw, router, relay and harness included."""
    client_violation_minutes: float | None = None
    """Like ``violation_minutes``, from the client's view alone (10 s buckets by answer time)."""
    generator_drift: float | None = None
    """Largest ``|sent - planned| / planned`` over the :data:`LOAD_BUCKET_S` buckets: how far
    the offered load strayed from the trace (None: send times were not recorded)."""
    load: tuple[LoadBucket, ...] = ()
    """Planned and sent requests per :data:`LOAD_BUCKET_S` bucket."""


def step_trace(capacity_rps: float, low: float, high: float, times: Sequence[float]) -> list[Phase]:
    """low -> high -> low (fractions of one replica's capacity) ending at the given times."""
    t_low, t_high, t_end = times
    return [
        Phase(t_low, low * capacity_rps),
        Phase(t_high, high * capacity_rps),
        Phase(t_end, low * capacity_rps),
    ]


def violation_minutes(
    rows: Sequence[Row], target: float, other_misses: Sequence[float] = ()
) -> float:
    """Buckets whose finished (and turned-away) requests attained less than ``target``; a
    bucket in which nothing finished while requests were outstanding is a violation too (it
    must not read as 100 %). ``other_misses``: times of misses no counter saw (client errors).
    """
    buckets: dict[int, list[float]] = {}
    for row in rows:
        acc = buckets.setdefault(int(row.t // BUCKET_S), [0.0, 0.0, 0.0])
        acc[0] += row.attained
        acc[1] += row.missed
        acc[2] = max(acc[2], row.outstanding)
    for t in other_misses:
        buckets.setdefault(int(t // BUCKET_S), [0.0, 0.0, 0.0])[1] += 1.0
    bad = sum(
        1
        for ok, miss, waiting in buckets.values()
        if (ok + miss > 0 and ok / (ok + miss) < target) or (ok + miss == 0 and waiting > 0)
    )
    return bad * BUCKET_S / 60.0


def e2e_bound_s(max_tokens: int, slo: SLO | None = None) -> float:
    """Longest end-to-end time of a non-streamed answer of ``max_tokens`` tokens that can still
    have met ``slo`` (default: the engines' default SLO): the first token within TTFT, the rest
    at the mean TBT. Beyond it the client cannot have seen the SLO met."""
    slo = slo or SLO()
    return slo.ttft_s + slo.tbt_s * max(0, max_tokens - 1)


def client_attainment(requests: Sequence[Served], target: float) -> tuple[float, float] | None:
    """(attainment, violation minutes) of the requests as the client saw them: answered
    within :func:`e2e_bound_s`, in 10 s buckets by answer time. ``None`` without the token
    counts (episodes recorded before they were kept)."""
    if not requests or not all(r.max_tokens for r in requests):
        return None
    buckets: dict[int, list[int]] = {}
    for r in requests:
        acc = buckets.setdefault(int((r.sent_at + r.latency_s) // BUCKET_S), [0, 0])
        acc[0] += r.status == 200 and r.latency_s <= e2e_bound_s(r.max_tokens)
        acc[1] += 1
    met = sum(ok for ok, _ in buckets.values())
    bad = sum(1 for ok, n in buckets.values() if ok / n < target)
    return met / len(requests), bad * BUCKET_S / 60.0


def load_buckets(planned: Sequence[float], sent: Sequence[float]) -> tuple[LoadBucket, ...]:
    """Planned and sent requests per bucket of send time, from 0 to the last either has."""
    counts: dict[int, list[int]] = {}
    for column, times in enumerate((planned, sent)):
        for t in times:
            counts.setdefault(int(t // LOAD_BUCKET_S), [0, 0])[column] += 1
    last = max(counts, default=-1)
    return tuple(LoadBucket(b * LOAD_BUCKET_S, *counts.get(b, [0, 0])) for b in range(last + 1))


def generator_drift(buckets: Sequence[LoadBucket]) -> float | None:
    """Largest relative difference between sent and planned requests in one bucket."""
    return max(
        (abs(b.sent - b.planned) / b.planned for b in buckets if b.planned > 0), default=None
    )


def _quantile(xs: Sequence[float], q: float) -> float | None:
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else None


def count_flaps(sizes: Sequence[int]) -> int:
    moves = [s for s, _ in itertools.groupby(sizes)]
    return sum(
        1 for w in zip(moves, moves[1:], moves[2:], moves[3:], strict=False) if w[:2] == w[2:]
    )


def summarize(episode: Episode, target: float) -> Summary:
    trace = episode.trace
    step_at = trace[0].until_s if len(trace) > 1 else math.inf  # a steady trace has no step
    drop_at = trace[-2].until_s if len(trace) > 2 else math.inf
    rows = episode.rows
    ups = [d.t for d in episode.decisions if d.desired > d.current and d.t >= step_at]
    downs = [d.t for d in episode.decisions if d.desired < d.current and d.t >= drop_at]
    below = next(
        (
            r.t
            for r in rows
            if r.t >= step_at and r.attainment is not None and r.attainment < target
        ),
        None,
    )
    recovered = None
    if below is not None:
        recovered = next(
            (
                r.t
                for r in rows
                if r.t > below and r.attainment is not None and r.attainment >= target
            ),
            None,
        )
    turned_away = {429, 503} if episode.config.routers else set()
    errors = [
        r.sent_at + r.latency_s
        for r in episode.requests
        if r.status != 200 and r.status not in turned_away
    ]
    ok = sum(r.attained for r in rows)
    miss = sum(r.missed for r in rows) + len(errors)
    answered = sorted(r.latency_s for r in episode.requests if r.status == 200)
    client = client_attainment(episode.requests, target)
    replica_s = sum(a.ready * (b.t - a.t) for a, b in itertools.pairwise(rows))
    plan = [t for t, _ in arrivals(trace, episode.workload, episode.config.seed)]
    load = load_buckets(plan, episode.sent_at) if episode.sent_at else ()
    sizes = [episode.config.initial_replicas, *(d.desired for d in episode.decisions)]
    return Summary(
        controller=episode.controller,
        reaction_from_step_s=ups[0] - step_at if ups else None,
        reaction_from_violation_s=ups[0] - below if ups and below is not None else None,
        recovery_s=recovered - below if recovered is not None and below is not None else None,
        violation_minutes=violation_minutes(rows, target, errors),
        attainment=ok / (ok + miss) if ok + miss else None,
        replica_minutes=replica_s / 60.0,
        peak_replicas=max(sizes),
        scale_down_after_drop_s=downs[0] - drop_at if downs else None,
        flaps=count_flaps(sizes),
        decisions=len(episode.decisions),
        turned_away=sum(r.turned_away for r in rows),
        cold_start_s=max(episode.cold_starts, default=None),
        client_errors=len(errors),
        client_latency_p50_s=_quantile(answered, 0.5),
        client_latency_p99_s=_quantile(answered, 0.99),
        client_attainment=None if client is None else client[0],
        client_violation_minutes=None if client is None else client[1],
        generator_drift=generator_drift(load),
        load=load,
    )


def plot(episodes: Sequence[Episode], target: float, kv_target: float, path: Path) -> None:
    """Replicas, attainment and KV pressure over time, one column per controller."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        3, len(episodes), figsize=(6 * len(episodes), 8), sharex=True, squeeze=False
    )
    for col, ep in enumerate(episodes):
        t = [r.t for r in ep.rows]
        ax = axes[0][col]
        ax.step(t, [r.desired for r in ep.rows], where="post", label="desired")
        ax.step(t, [r.ready for r in ep.rows], where="post", label="ready")
        ax2 = ax.twinx()
        ax2.plot(t, [r.rps for r in ep.rows], color="grey", alpha=0.4, label="load (req/s)")
        ax2.set_ylabel("load (req/s)")
        ax.set_ylabel("replicas")
        ax.set_title(ep.controller)
        ax.legend(loc="upper left")
        ax = axes[1][col]
        ax.plot(t, [_nan(r.attainment) for r in ep.rows], label="attainment (60 s window)")
        ax.axhline(target, color="red", linestyle="--", label=f"target {target:g}")
        ax.set_ylim(-0.02, 1.02)
        ax.set_ylabel("SLO attainment")
        ax.legend(loc="lower left")
        ax = axes[2][col]
        ax.plot(t, [_nan(r.kv_pressure) for r in ep.rows], label="KV pressure (mean)")
        ax.plot(t, [_nan(r.kv_usage) for r in ep.rows], label="KV usage (mean)")
        ax.axhline(kv_target, color="red", linestyle="--", label=f"target {kv_target:g}")
        ax.set_ylabel("ratio")
        ax.set_xlabel("time (modelled s)")
        ax.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_requests(episodes: Sequence[Episode], path: Path) -> None:
    """Replicas and router queue depth over time, and each request's latency at its send
    time (answered, turned away), one column per controller: a scale-to-zero episode."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        2, len(episodes), figsize=(7 * len(episodes), 6), sharex=True, squeeze=False
    )
    for col, ep in enumerate(episodes):
        t = [r.t for r in ep.rows]
        ax = axes[0][col]
        ax.step(t, [r.desired for r in ep.rows], where="post", label="desired replicas")
        ax.step(t, [r.ready for r in ep.rows], where="post", label="ready replicas")
        ax.set_ylabel("replicas")
        ax.set_title(ep.controller)
        ax2 = ax.twinx()
        queued = [_nan(r.router_queued) for r in ep.rows]
        ax2.plot(t, queued, color="tab:red", alpha=0.6, label="router queue")
        ax2.set_ylabel("requests held by the router")
        ax.legend(loc="upper left")
        ax2.legend(loc="upper right")
        ax = axes[1][col]
        ok = [r for r in ep.requests if r.status == 200]
        bad = [r for r in ep.requests if r.status != 200]
        ax.scatter([r.sent_at for r in ok], [r.latency_s for r in ok], s=6, label="answered")
        ax.scatter(
            [r.sent_at for r in bad],
            [r.latency_s for r in bad],
            s=10,
            marker="x",
            color="tab:red",
            label="turned away (429/503)",
        )
        ax.set_yscale("log")
        ax.set_ylabel("latency (modelled s)")
        ax.set_xlabel("sent at (modelled s)")
        ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _nan(x: float | None) -> float:
    return math.nan if x is None else x


def default_spec(**autoscaling: object) -> api.LLMServiceSpec:
    return api.LLMServiceSpec.model_validate({"model": {"name": "m"}, "autoscaling": autoscaling})


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--capacity-rps", type=float, default=11.0, help="one replica's capacity")
    parser.add_argument("--low", type=float, default=0.3, help="low load, share of capacity")
    parser.add_argument("--high", type=float, default=2.0, help="high load, share of capacity")
    parser.add_argument(
        "--times",
        type=float,
        nargs=3,
        default=(60.0, 240.0, 600.0),
        metavar=("STEP", "DROP", "END"),
        help="modelled seconds: load step up, load drop, end",
    )
    parser.add_argument(
        "--steady",
        type=float,
        metavar="FRACTION",
        help="instead of the step: constant load at this share of capacity until END",
    )
    parser.add_argument("--time-scale", type=float, default=2.0, help="modelled s per wall s")
    parser.add_argument("--kv-tokens", type=int, default=16384, help="KV capacity per engine")
    parser.add_argument(
        "--controllers", nargs="+", default=["sloserve", "hpa-kv-usage"], help="which to run"
    )
    parser.add_argument("--gpu-limit", type=int, default=1000, help="replicas that fit")
    parser.add_argument(
        "--phases",
        nargs="+",
        metavar="UNTIL:RPS",
        help="instead of the step: Poisson phases, e.g. 30:3.3 150:0 152:25 300:0 (a burst "
        "after idling, for scale to zero)",
    )
    parser.add_argument(
        "--scale-to-zero-after",
        type=float,
        metavar="S",
        help="our autoscaler with autoscaling.minReplicas 0 and scaleToZeroAfterS S (also the "
        "scale-down window, the most CEL allows); needs --routers",
    )
    parser.add_argument(
        "--startup-delay-s",
        type=float,
        default=0.0,
        help="simulated engines' model-load time (sloserve-engine --startup-delay-s)",
    )
    parser.add_argument(
        "--routers",
        type=int,
        default=0,
        help="real sloserve-router processes in front of the engines (0: the load generator "
        "places requests on the least-loaded engine itself)",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--from-episodes",
        type=Path,
        metavar="EPISODES_JSON",
        help="run nothing: summarize and plot the episodes of an earlier run into --out",
    )
    parser.add_argument("--out", type=Path, required=True, help="output folder")


def controllers(
    spec: api.LLMServiceSpec,
) -> dict[str, Callable[[Callable[[], float]], ScalingController]]:
    policy = policy_from_spec(spec)
    return {
        "sloserve": lambda clock: SloAutoscaler(policy, clock),
        "hpa-kv-usage": lambda clock: KvUsageBaseline(policy.kv_pressure_target, clock),
    }


def run(args: argparse.Namespace) -> int:
    # SIGTERM unwinds like Ctrl-C, so the fleet's engine processes are stopped on the way out.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    console = Console()
    args.out.mkdir(parents=True, exist_ok=True)
    zero = args.scale_to_zero_after
    if zero is not None and not args.routers:
        raise SystemExit("--scale-to-zero-after needs --routers: routers hold requests at zero")
    spec = (
        default_spec()
        if zero is None
        else default_spec(
            minReplicas=0,
            scaleToZeroAfterS=int(zero),
            scaleDownStabilizationSeconds=int(min(zero, 300)),
        )
    )
    target = policy_from_spec(spec).slo_attainment_target
    if args.phases:
        trace = [Phase(float(u), float(r)) for u, r in (p.split(":") for p in args.phases)]
    elif args.steady is not None:
        trace = [Phase(args.times[-1], args.steady * args.capacity_rps)]
    else:
        trace = step_trace(args.capacity_rps, args.low, args.high, args.times)
    config = RunConfig(
        time_scale=args.time_scale,
        engine_args=(
            "--kv-tokens",
            str(args.kv_tokens),
            "--served-model-name",
            "m",
            "--startup-delay-s",
            str(args.startup_delay_s),
        ),
        gpu_limit=args.gpu_limit,
        seed=args.seed,
        routers=args.routers,
    )
    if args.from_episodes is not None:
        episodes = [episode_from_json(e) for e in json.loads(args.from_episodes.read_text())]
    else:
        episodes = _run_all(args, trace, config, controllers(spec), console)
    summaries = [summarize(ep, target) for ep in episodes]
    (args.out / "episodes.json").write_text(json.dumps([ep.to_json() for ep in episodes]))
    (args.out / "summary.json").write_text(json.dumps([asdict(s) for s in summaries], indent=2))
    plot(episodes, target, policy_from_spec(spec).kv_pressure_target, args.out / "episode.png")
    if any(ep.config.routers for ep in episodes):
        plot_requests(episodes, args.out / "requests.png")
    table = Table(title="autoscaler bench (modelled seconds)")
    columns = [c for c in asdict(summaries[0]) if c != "load"]  # per bucket: in summary.json
    for column in columns:
        table.add_column(column)
    for s in summaries:
        table.add_row(*(_fmt(asdict(s)[c]) for c in columns))
    console.print(table)
    return 0


def episode_from_json(data: dict[str, Any]) -> Episode:
    """An episode as ``episodes.json`` holds it (``Episode.to_json``), for re-summarizing."""
    config: dict[str, Any] = {
        k: tuple(v) if isinstance(v, list) else v for k, v in data["config"].items()
    }
    workload = Workload.from_json(data["workload"]) if "workload" in data else Workload()
    episode = Episode(
        data["controller"], [Phase(**p) for p in data["trace"]], RunConfig(**config), workload
    )
    episode.rows = [Row(**r) for r in data["rows"]]
    episode.decisions = [DecisionLog(**d) for d in data["decisions"]]
    episode.requests = [Served(**r) for r in data["requests"]]
    if episode.requests and not any(r.max_tokens for r in episode.requests):
        # Recorded before token counts were kept: replay the seeded load (sent in this order).
        sent = sorted(episode.requests, key=lambda r: r.sent_at)
        bodies = arrivals(episode.trace, episode.workload, episode.config.seed)
        for request, (_, body) in zip(sent, bodies, strict=True):
            request.max_tokens = body["max_tokens"]
    episode.sent, episode.failed = data["sent"], data["failed"]
    episode.sent_at = list(data.get("sent_at", []))
    episode.cold_starts = list(data.get("cold_starts", []))
    return episode


def _run_all(
    args: argparse.Namespace,
    trace: list[Phase],
    config: RunConfig,
    makers: dict[str, Callable[[Callable[[], float]], ScalingController]],
    console: Console,
) -> list[Episode]:
    episodes = []
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        for name in args.controllers:
            task = progress.add_task(name, total=trace[-1].until_s, status="")

            def tick(now: float, row: Row, task: TaskID = task) -> None:
                att = "n/a" if row.attainment is None else f"{row.attainment:.2f}"
                progress.update(
                    task, completed=now, status=f"replicas={row.ready}/{row.desired} att={att}"
                )

            with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as logs:
                episodes.append(
                    asyncio.run(
                        run_episode(makers[name], trace, Workload(), config, Path(logs), tick)
                    )
                )
    return episodes


def _fmt(value: object) -> str:
    return f"{value:.2f}" if isinstance(value, float) else str(value)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    raise SystemExit(run(parser.parse_args()))
