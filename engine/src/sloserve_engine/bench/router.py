"""``sloserve bench router``: real ``sloserve-engine --simulated`` processes behind real
``sloserve-router`` processes, over HTTP on loopback.

Four measurements, each from real processes and real sockets:

1. **Attainment per placement policy**: a trace (azure-conv timestamps scaled
   to ``--rate``) is replayed as streamed completions spread round-robin over
   the routers (what a Service in front of router pods does). Every request
   is judged by the one attainment rule (:mod:`sloserve_engine.contract.attainment`);
   429/503/errors/cut-off streams are misses. The routers' own histograms give
   the decision time; their counters give shield refusals. With ``--segments`` the
   arms run in rounds, one trace slice each, the arm order rotated between rounds
   (:func:`rotations`), after an unrecorded ``--warmup``; :func:`ranking` gives each
   arm's mean and spread.
2. **Shield on/off** for one policy: refusals per 1,000 requests and attainment.
3. **Added latency** and **decision time**, 4. **relay throughput**, with the
   router alone on one core: :mod:`.router_perf`.

The last line printed is one JSON object (:func:`summary`): the issue's targets and
the figures they are judged on.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from ..contract.attainment import (
    MISSED,
    STALL_BOUND_MS_DEFAULT,
    Attainment,
    ratios,
    request_attainment,
)
from ..contract.slo import SLO
from ..router.placement import PLACEMENT_NAMES
from ..sim.workload import TraceRequest, WorkloadSpec, build_workload
from .fleet import Fleet, fleet


@dataclass(frozen=True, slots=True)
class Served:
    """What the client saw of one request."""

    status: int
    ttft_s: float | None = None
    finish_s: float | None = None
    tokens: int = 0
    max_gap_s: float = 0.0


@dataclass(slots=True)
class PolicyRun:
    placement: str
    shield: bool
    segment: int
    round: int
    position: int
    standard: float
    strict: float
    requests: int
    rejected: int
    errors: int
    shield_refusals: int
    decision_p99_le_s: float
    decision_mean_s: float
    ttft_p99_s: float | None


@dataclass(slots=True)
class RouterReport:
    command: str
    machine: str
    config: dict[str, Any]
    runs: list[PolicyRun] = field(default_factory=list)
    ranking: list[dict[str, Any]] = field(default_factory=list)
    latency: dict[str, float] = field(default_factory=dict)
    relay: dict[str, float] = field(default_factory=dict)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--engines", type=int, default=4, help="engine processes (default 4)")
    p.add_argument("--routers", type=int, default=2, help="router processes (default 2)")
    p.add_argument("--trace", default="azure-conv")
    p.add_argument("--requests", type=int, default=300, help="requests per policy run")
    p.add_argument("--rate", type=float, default=8.0, help="mean arrival rate, requests/s")
    p.add_argument(
        "--kv-tokens", type=int, default=16_384, help="KV per engine (small: pressure at low rate)"
    )
    p.add_argument("--policies", default=",".join(PLACEMENT_NAMES))
    p.add_argument(
        "--shield-compare",
        default="least-kv",
        help="comma list of policies also run with the shield off (right after shield on)",
    )
    p.add_argument(
        "--warmup",
        type=int,
        default=0,
        help="requests replayed first and not recorded (taken from the slice after the last "
        "of --segments, so no measured request is seen twice)",
    )
    p.add_argument(
        "--segments",
        default="0",
        help="comma list of trace slices of --requests each; one round of every arm per "
        "slice, the arm order rotated from round to round (order effects balanced)",
    )
    p.add_argument("--slo-ttft-ms", type=float, default=1000.0)
    p.add_argument("--slo-tbt-ms", type=float, default=100.0)
    p.add_argument("--latency-samples", type=int, default=200)
    p.add_argument("--relay-streams", type=int, default=32)
    p.add_argument("--relay-tokens", type=int, default=1500, help="tokens per relay stream")
    p.add_argument("--relay-time-scale", type=float, default=40.0)
    p.add_argument("--relay-engines", type=int, default=2, help="engines feeding the relay")
    p.add_argument(
        "--router-cpu",
        type=int,
        default=None,
        help="CPU the measured router runs on alone in the latency and relay phases (engines "
        "and the client get the others); default: the last CPU; -1: no pinning",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--log-dir", type=Path, default=Path("/tmp/sloserve-bench-router"))
    p.add_argument("--json", type=Path, default=None, help="write the report here")
    p.add_argument(
        "--skip", default="", help="comma list of phases to skip: policies,latency,relay"
    )
    from .router_arms import ARM_NAMES  # router_arms imports this module's client side

    g = p.add_argument_group("already-running engines (issue 17: real vLLM on a GPU)")
    g.add_argument(
        "--engine-urls",
        default=None,
        help="comma list of running engines' URLs: start only routers in front of them and "
        "run the placement arms (--arms) at --rates, instead of simulated engines",
    )
    g.add_argument("--admin-token-file", type=Path, default=None, help="the routers' admin token")
    g.add_argument("--arms", default=",".join(ARM_NAMES), help="placement arms, in run order")
    g.add_argument("--rates", default="", help="comma list of rates (default: --rate)")
    g.add_argument("--oos", default="", help="out-of-sample runs, TRACE@RATE comma list")
    g.add_argument(
        "--oos-requests", type=int, default=0, help="requests per --oos run (0: --requests)"
    )
    g.add_argument("--segment", type=int, default=0, help="which slice of --requests requests")
    g.add_argument("--model-name", default="sim", help="the engines' served model name")
    g.add_argument("--out", type=Path, default=Path("/tmp/sloserve-bench-router-urls"))
    g.add_argument("--label", default="placement arms against running engines")


# ---------------------------------------------------------------------------- client side


async def _stream_one(
    client: httpx.AsyncClient, url: str, body: dict[str, Any], start: float
) -> Served:
    """One streamed completion; times relative to ``start`` (the request's arrival)."""
    try:
        async with client.stream("POST", url + "/v1/completions", json=body) as r:
            if r.status_code != 200:
                await r.aread()
                return Served(r.status_code)
            first: float | None = None
            last = start
            gap = 0.0
            tokens = 0
            async for chunk in r.aiter_raw():
                now = time.monotonic()
                n = chunk.count(b'"finish_reason"')
                if b'"error"' in chunk:
                    return Served(502)
                if n == 0:
                    continue
                if first is None:
                    first = now
                else:
                    gap = max(gap, now - last)
                last = now
                tokens += n
            if first is None:
                return Served(502)
            return Served(200, first - start, last - start, tokens, gap)
    except httpx.HTTPError:
        return Served(599)


async def replay(
    routers: Sequence[str], workload: Sequence[TraceRequest], slo: SLO
) -> list[Served]:
    """Send every request at its arrival offset, round-robin over ``routers``."""
    xargs = {"slo_class": slo.slo_class, "ttft_ms": slo.ttft_s * 1e3, "tbt_ms": slo.tbt_s * 1e3}
    limits = httpx.Limits(max_connections=2000, max_keepalive_connections=500)
    async with httpx.AsyncClient(timeout=httpx.Timeout(300.0), limits=limits) as client:
        t0 = time.monotonic() + 0.2
        first = workload[0].arrival

        async def one(i: int, req: TraceRequest) -> Served:
            due = t0 + req.arrival - first
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            body = {
                "model": "sim",
                "prompt": [11] * req.prompt_tokens,
                "max_tokens": req.output_tokens,
                "stream": True,
                "vllm_xargs": xargs,
            }
            return await _stream_one(client, routers[i % len(routers)], body, time.monotonic())

        return list(await asyncio.gather(*(one(i, r) for i, r in enumerate(workload))))


def judge(results: Sequence[Served], slo: SLO) -> list[Attainment]:
    out = []
    for s in results:
        if s.status != 200 or s.ttft_s is None or s.finish_s is None:
            out.append(MISSED)
        else:
            out.append(
                request_attainment(
                    slo,
                    0.0,
                    s.ttft_s,
                    s.finish_s,
                    s.tokens,
                    s.max_gap_s,
                    STALL_BOUND_MS_DEFAULT / 1e3,
                )
            )
    return out


# ---------------------------------------------------------------------------- rounds


def parse_segments(text: str) -> list[int]:
    """``"0,1,2"`` → ``[0, 1, 2]``; distinct, non-negative."""
    out = [int(s) for s in text.split(",") if s.strip()]
    if not out or min(out) < 0 or len(set(out)) != len(out):
        raise ValueError(f"--segments {text!r}: expected distinct non-negative integers")
    return out


Arm = tuple[str, bool]
"""(placement, shield on)."""


def rotations(arms: Sequence[Arm], rounds: int) -> list[list[Arm]]:
    """The arm order of each round: round r starts ``r * len(arms) // rounds`` arms further
    on, so an arm's position moves evenly through the run (with ``rounds == len(arms)`` every
    arm runs once in every position). Engines learn as they serve, so a fixed order would
    credit later arms with better-trained engines."""
    m = len(arms)
    return [[arms[(r * m // rounds + i) % m] for i in range(m)] if m else [] for r in range(rounds)]


def ranking(runs: Sequence[PolicyRun]) -> list[dict[str, Any]]:
    """Per arm over its rounds: mean, min and max standard attainment, best mean first."""
    by_arm: dict[Arm, list[PolicyRun]] = {}
    for r in runs:
        by_arm.setdefault((r.placement, r.shield), []).append(r)
    rows = [
        {
            "placement": placement,
            "shield": shield,
            "rounds": len(rs),
            "standard_mean": sum(r.standard for r in rs) / len(rs),
            "standard_min": min(r.standard for r in rs),
            "standard_max": max(r.standard for r in rs),
            "strict_mean": sum(r.strict for r in rs) / len(rs),
            "shield_refusals_per_1k": 1000
            * sum(r.shield_refusals for r in rs)
            / max(1, sum(r.requests for r in rs)),
        }
        for (placement, shield), rs in by_arm.items()
    ]
    return sorted(rows, key=lambda row: -float(row["standard_mean"]))


# ---------------------------------------------------------------------------- scraping


def scrape(url: str) -> dict[str, float]:
    """Every sample of a router's ``/metrics`` as ``name{labels}`` → value."""
    out: dict[str, float] = {}
    for line in httpx.get(url + "/metrics", timeout=10).text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            out[key] = float(value)
    return out


def histogram_quantile_le(samples: dict[str, float], name: str, q: float) -> float:
    """Upper bucket bound holding the ``q`` quantile (a bound, not an estimate)."""
    buckets: list[tuple[float, float]] = []
    for key, value in samples.items():
        if key.startswith(name + "_bucket{"):
            bound = key.split('le="')[1].split('"')[0]
            buckets.append((math.inf if bound == "+Inf" else float(bound), value))
    buckets.sort()
    total = buckets[-1][1] if buckets else 0.0
    for le, count in buckets:
        if total and count >= q * total:
            return le
    return math.nan


def _sum(samples_list: Sequence[dict[str, float]], key: str) -> float:
    return sum(s.get(key, 0.0) for s in samples_list)


def _merged_hist(samples_list: Sequence[dict[str, float]], name: str) -> dict[str, float]:
    merged: dict[str, float] = {}
    for s in samples_list:
        for key, value in s.items():
            if key.startswith(name):
                merged[key] = merged.get(key, 0.0) + value
    return merged


def _delta(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {k: v - before.get(k, 0.0) for k, v in after.items()}


def _wait_idle(f: Fleet, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        states = [httpx.get(e.url + "/sloserve/state", timeout=5).json() for e in f.engines]
        if all(s["running"] == 0 and s["waiting"] == 0 for s in states):
            return
        time.sleep(0.2)


def _put_knobs(f: Fleet, knobs: dict[str, Any]) -> None:
    auth = {"Authorization": "Bearer " + f.token_file.read_text().strip()}
    for r in f.routers:
        resp = httpx.put(r.url + "/sloserve/knobs", json=knobs, headers=auth, timeout=10)
        resp.raise_for_status()


def run_policy(
    f: Fleet,
    workload: Sequence[TraceRequest],
    slo: SLO,
    placement: str,
    shield: bool,
    segment: int = 0,
    rnd: int = 0,
    position: int = 0,
) -> PolicyRun:
    _put_knobs(f, {"placement": placement, "shield": shield})
    _wait_idle(f)
    before = [scrape(r.url) for r in f.routers]
    results = asyncio.run(replay([r.url for r in f.routers], workload, slo))
    after = [scrape(r.url) for r in f.routers]
    deltas = [_delta(a, b) for a, b in zip(after, before, strict=True)]
    verdicts = judge(results, slo)
    rat = ratios(verdicts)
    hist = _merged_hist(deltas, "sloserve_router_decision_seconds")
    count = hist.get("sloserve_router_decision_seconds_count", 0.0)
    ttfts = sorted(s.ttft_s for s in results if s.status == 200 and s.ttft_s is not None)
    return PolicyRun(
        placement=placement,
        shield=shield,
        segment=segment,
        round=rnd,
        position=position,
        standard=rat.standard,
        strict=rat.strict,
        requests=rat.requests,
        rejected=sum(1 for s in results if s.status in (429, 503)),
        errors=sum(1 for s in results if s.status not in (200, 429, 503)),
        shield_refusals=int(_sum(deltas, "sloserve_router_shield_refusals_total")),
        decision_p99_le_s=histogram_quantile_le(hist, "sloserve_router_decision_seconds", 0.99),
        decision_mean_s=hist.get("sloserve_router_decision_seconds_sum", 0.0) / max(count, 1),
        ttft_p99_s=ttfts[min(len(ttfts) - 1, int(0.99 * len(ttfts)))] if ttfts else None,
    )


# ---------------------------------------------------------------------------- main


def run(args: argparse.Namespace) -> int:
    if args.engine_urls:
        from . import router_arms

        return router_arms.run(args)
    console = Console()
    policies = [p.strip() for p in args.policies.split(",") if p.strip()]
    unknown = [p for p in policies if p not in PLACEMENT_NAMES]
    if unknown or args.engines < 1 or args.routers < 1:
        raise ValueError(f"bad --policies {unknown} or --engines/--routers < 1")
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    slo = SLO(slo_class="standard", ttft_ms=args.slo_ttft_ms, tbt_ms=args.slo_tbt_ms)
    segments = parse_segments(args.segments)
    if args.warmup > args.requests:
        raise ValueError("--warmup must be <= --requests")

    def workload(segment: int) -> list[TraceRequest]:
        spec = WorkloadSpec(
            trace=args.trace,
            requests=args.requests,
            rate=args.rate,
            arrival="trace",
            seed=args.seed,
            segment=segment,
        )
        return build_workload(spec)

    report = RouterReport(
        command="sloserve bench router " + " ".join(_argv(args)),
        machine=f"{os.uname().nodename}: {os.cpu_count()} CPUs, loopback HTTP; load average "
        f"at the start {_loadavg()}",
        config={
            k: (str(v) if isinstance(v, Path) else v)
            for k, v in vars(args).items()
            if k not in ("func",)
        },
    )
    engine_flags = ("--kv-tokens", str(args.kv_tokens))
    if "policies" not in skip:
        with fleet(args.log_dir / "policies") as f:
            for _ in range(args.engines):
                f.start_engine(*engine_flags)
            for _ in range(args.routers):
                f.start_router()
            f.wait_ready()
            compare = {p.strip() for p in args.shield_compare.split(",") if p.strip()}
            arms = [(p, on) for p in policies for on in (True, False) if on or p in compare]
            if args.warmup:  # engines' output-length predictors learn before anything counts
                console.print(f"warm-up: {args.warmup} requests (not recorded) ...")
                warm = workload(max(segments) + 1)[: args.warmup]
                run_policy(f, warm, slo, "random", False, segment=-1)
            orders = rotations(arms, len(segments))
            for rnd, (segment, order) in enumerate(zip(segments, orders, strict=True)):
                replay_slice = workload(segment)
                for position, (placement, shield) in enumerate(order):
                    console.print(
                        f"round {rnd} (segment {segment}): {placement} "
                        f"shield={'on' if shield else 'off'} ..."
                    )
                    result = run_policy(
                        f, replay_slice, slo, placement, shield, segment, rnd, position
                    )
                    report.runs.append(result)
                    console.print(
                        f"  standard {result.standard:.3f} strict {result.strict:.3f} "
                        f"rejected {result.rejected} errors {result.errors} "
                        f"refusals {result.shield_refusals} decision p99 <= "
                        f"{result.decision_p99_le_s * 1e3:g} ms"
                    )
            report.ranking = ranking(report.runs)
    from .router_perf import added_latency, client_on, pinning, relay_throughput

    pin = pinning(args.router_cpu)
    report.config["pinning"] = pin.describe()
    if "latency" not in skip:
        with fleet(args.log_dir / "latency") as f, client_on(pin.rest):
            engine = f.start_engine(cpus=pin.rest)
            router = f.start_router(cpus=pin.router)
            unshielded = f.start_router(cpus=pin.router)
            f.wait_ready()
            auth = {"Authorization": "Bearer " + f.token_file.read_text().strip()}
            httpx.put(
                unshielded.url + "/sloserve/knobs", json={"shield": False}, headers=auth
            ).raise_for_status()
            time.sleep(0.5)
            report.latency = asyncio.run(
                added_latency(engine, router, unshielded, args.latency_samples)
            )
    if "relay" not in skip:
        with fleet(args.log_dir / "relay") as f, client_on(pin.rest):
            for _ in range(args.relay_engines):
                f.start_engine(time_scale=args.relay_time_scale, cpus=pin.rest)
            router = f.start_router(cpus=pin.router)
            f.wait_ready()
            report.relay = relay_throughput(router, args.relay_streams, args.relay_tokens)
    report.machine += f"; load average at the end {_loadavg()}"
    _print(console, report)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(asdict(report), indent=2, default=str) + "\n")
    print(json.dumps(summary(report)), flush=True)
    return 0


def _loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


TARGETS_MS = {"added_p50_ms": 1.0, "added_p99_ms": 5.0, "decision_p99_le_ms": 2.0}
RELAY_TARGET_TOKENS_PER_S = 15_000.0
"""Issue 15's targets for the router on real processes."""


def summary(report: RouterReport) -> dict[str, Any]:
    """One JSON line for scripts (and the lead's GPU host run): the targets and the figures
    they are judged on. Added latency is per request: the median and p99 of (through the
    router − direct) over interleaved pairs, on the shield-off path (the shield is a design
    choice with its own measured hop, reported beside it)."""
    lat, relay = report.latency, report.relay
    out: dict[str, Any] = {
        "bench": "router",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": report.machine,
        "pinning": report.config.get("pinning"),
    }
    if lat:
        out |= {
            "added_p50_ms": round(lat["router_no_shield_paired_added_median_ms"], 3),
            "added_p99_ms": round(lat["router_no_shield_paired_added_p99_ms"], 3),
            "added_p99_minus_direct_p99_ms": round(lat["router_no_shield_added_p99_ms"], 3),
            "added_shield_p50_ms": round(lat["router_paired_added_median_ms"], 3),
            "added_shield_p99_ms": round(lat["router_paired_added_p99_ms"], 3),
            "direct_p50_ms": round(lat["direct_p50_ms"], 3),
            "router_cpu_ms_per_request": round(lat["router_no_shield_cpu_ms_per_request"], 3),
            "router_shield_cpu_ms_per_request": round(lat["router_cpu_ms_per_request"], 3),
            "decision_p50_le_ms": lat["decision_p50_le_ms"],
            "decision_p99_le_ms": lat["decision_p99_le_ms"],
        }
    if relay:
        out |= {
            "relay_tokens_per_s": round(relay["tokens_per_wall_s"]),
            "relay_tokens_per_router_cpu_s": _rounded(relay["tokens_per_router_cpu_s"]),
            "relay_router_cpu_share": round(relay["router_cpu_share"], 3),
            "relay_tokens_per_chunk": round(relay["tokens_per_chunk"], 2),
            "relay_chunks_per_router_cpu_s": _rounded(relay["chunks_per_router_cpu_s"]),
        }
    met = {k: out[k] <= bound for k, bound in TARGETS_MS.items() if k in out}
    if relay:
        met["relay_tokens_per_s"] = out["relay_tokens_per_s"] >= RELAY_TARGET_TOKENS_PER_S
    out["targets_met"] = met
    return out


def _rounded(x: float) -> int | None:
    """A per-CPU-second rate, or ``None`` when the router used less CPU than ``/proc``'s
    clock tick can show (a short relay): NaN is not JSON and not a measurement."""
    return round(x) if math.isfinite(x) else None


def _argv(args: argparse.Namespace) -> list[str]:
    out = []
    keys = ("engines", "routers", "trace", "requests", "rate", "kv_tokens", "policies",
            "shield_compare", "warmup", "segments", "skip", "slo_ttft_ms", "slo_tbt_ms",
            "latency_samples", "relay_streams", "relay_tokens", "relay_time_scale", "relay_engines",
            "seed")  # fmt: skip
    for key in keys:
        out += [f"--{key.replace('_', '-')}", str(getattr(args, key))]
    if args.router_cpu is not None:
        out += ["--router-cpu", str(args.router_cpu)]
    return out


def _print(console: Console, report: RouterReport) -> None:
    if report.runs:
        table = Table(title="placement over real processes (misses: 429/503/errors)")
        for col in ("placement", "shield", "segment", "standard", "strict", "rejected", "errors",
                    "refusals/1k", "decision p99 ≤", "TTFT p99 (served)"):  # fmt: skip
            table.add_column(col)
        for r in report.runs:
            table.add_row(
                r.placement,
                "on" if r.shield else "off",
                str(r.segment),
                f"{r.standard:.3f}",
                f"{r.strict:.3f}",
                str(r.rejected),
                str(r.errors),
                f"{1000 * r.shield_refusals / max(r.requests, 1):.1f}",
                f"{r.decision_p99_le_s * 1e3:g} ms",
                f"{r.ttft_p99_s:.3f} s" if r.ttft_p99_s is not None else "-",
            )
        console.print(table)
    if report.ranking:
        table = Table(title="ranking: standard attainment over the rounds (mean, min–max)")
        for col in ("placement", "shield", "rounds", "mean", "min–max", "refusals/1k"):
            table.add_column(col)
        for row in report.ranking:
            table.add_row(
                row["placement"],
                "on" if row["shield"] else "off",
                str(row["rounds"]),
                f"{row['standard_mean']:.3f}",
                f"{row['standard_min']:.3f}–{row['standard_max']:.3f}",
                f"{row['shield_refusals_per_1k']:.0f}",
            )
        console.print(table)
    if report.latency:
        console.print({k: round(v, 3) for k, v in report.latency.items()})
    if report.relay:
        console.print({k: round(v, 1) for k, v in report.relay.items()})
