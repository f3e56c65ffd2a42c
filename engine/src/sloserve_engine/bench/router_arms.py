"""``sloserve bench router --engine-urls ...``: the five placement arms of issue 17 against
engines that are ALREADY running (real vLLM on a GPU, or ``sloserve-engine --simulated``).

The bench starts its own routers in front of the given engines and changes their knobs
live between arms (placement, shield and admission are all live knobs, so no restart).
Before every recorded arm a warm-up replays the trace's first requests unrecorded under
the same knobs: the engines' output-length predictors learn, and an arm does not inherit
the previous arm's queue (the routerhttp benchmark saw order effects without it).

Everything lands under ``--out``: one CSV per (trace, rate, arm) with what the client saw
of each request, one router log per arm (counter deltas: outcomes, shield refusals; and
``state_age``/``queue_depth`` sampled every second), the engines' ``/metrics`` after each
arm, ``summary.json`` and the printed table.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import math
import os
import statistics
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from ..contract.attainment import Attainment, ratios
from ..contract.slo import SLO
from ..router.knobs import DEFAULT_PLACEMENT
from ..sim.workload import TraceRequest, WorkloadSpec, build_workload
from .fleet import fleet
from .router import Served, _delta, _merged_hist, _sum, histogram_quantile_le, judge, scrape


@dataclass(frozen=True, slots=True)
class Arm:
    """One router configuration of issue 17."""

    name: str
    placement: str
    shield: bool
    admission: bool

    def knobs(self) -> dict[str, Any]:
        return {"placement": self.placement, "shield": self.shield, "admission": self.admission}


ARMS: tuple[Arm, ...] = (
    Arm("random", "random", shield=False, admission=False),  # what a plain Service gives
    Arm("least-kv", "least-kv", shield=False, admission=False),
    Arm("p2c", "p2c", shield=False, admission=False),
    Arm("sloserve-shield", DEFAULT_PLACEMENT, shield=True, admission=False),
    Arm("sloserve-admission", DEFAULT_PLACEMENT, shield=True, admission=True),
)
"""Baselines run without the shield and without admission (a load balancer has neither);
``sloserve`` is the shipped default placement (:data:`DEFAULT_PLACEMENT`)."""

ARM_NAMES = tuple(a.name for a in ARMS)


@dataclass(slots=True)
class ArmRun:
    trace: str
    rate: float
    arm: str
    placement: str
    shield: bool
    admission: bool
    requests: int
    standard: float
    strict: float
    rejected: int
    errors: int
    shield_refusals: int
    ttft_p99_s: float | None
    decision_p99_le_s: float
    decision_mean_s: float
    state_age_max_s: float
    wall_s: float


def parse_runs(text: str) -> list[tuple[str, float]]:
    """``azure-code@5,sharegpt@2`` → ``[("azure-code", 5.0), ("sharegpt", 2.0)]``."""
    out = []
    for item in (s.strip() for s in text.split(",")):
        if not item:
            continue
        trace, sep, rate = item.partition("@")
        if not sep or not trace:
            raise ValueError(f"--oos {item!r}: expected TRACE@RATE")
        out.append((trace, float(rate)))
    return out


def max_rate_at(
    runs: Sequence[ArmRun], arm: str, trace: str, key: str, target: float
) -> float | None:
    """Highest swept rate at which ``arm`` met ``target`` on ``key`` (``standard``/``strict``),
    every lower swept rate meeting it too; None when even the lowest missed."""
    best: float | None = None
    for r in sorted((r for r in runs if r.arm == arm and r.trace == trace), key=lambda r: r.rate):
        if getattr(r, key) < target:
            break
        best = r.rate
    return best


def p99(values: Sequence[float]) -> float | None:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] if ordered else None


# ---------------------------------------------------------------------------- I/O edges


class _Sampler:
    """Samples every router's state age and queue depth once a second during an arm."""

    def __init__(self, routers: Sequence[str]) -> None:
        self.routers = routers
        self.samples: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        t0 = time.monotonic()
        while not self._stop.wait(1.0):
            for i, url in enumerate(self.routers):
                try:
                    s = scrape(url)
                except httpx.HTTPError:
                    continue
                self.samples.append(
                    {
                        "t_s": round(time.monotonic() - t0, 3),
                        "router": i,
                        "state_age_s": s.get("sloserve_router_state_age_seconds"),
                        "queue_depth": s.get("sloserve_router_queue_depth"),
                    }
                )

    def __enter__(self) -> _Sampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def _put_knobs(routers: Sequence[str], token: str, knobs: dict[str, Any]) -> None:
    for url in routers:
        r = httpx.put(
            url + "/sloserve/knobs",
            json=knobs,
            headers={"Authorization": "Bearer " + token},
            timeout=10,
        )
        r.raise_for_status()


def _wait_idle(engines: Sequence[str], timeout_s: float = 300.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        states = [httpx.get(u + "/sloserve/state", timeout=5).json() for u in engines]
        if all(s["running"] == 0 and s["waiting"] == 0 for s in states):
            return
        time.sleep(0.5)


async def _replay(
    routers: Sequence[str], workload: Sequence[TraceRequest], slo: SLO, model: str
) -> list[Served]:
    from .router import _stream_one

    xargs = {"slo_class": slo.slo_class, "ttft_ms": slo.ttft_s * 1e3, "tbt_ms": slo.tbt_s * 1e3}
    limits = httpx.Limits(max_connections=4000, max_keepalive_connections=1000)
    async with httpx.AsyncClient(timeout=httpx.Timeout(600.0), limits=limits) as client:
        t0 = time.monotonic() + 0.2
        first = workload[0].arrival

        async def one(i: int, req: TraceRequest) -> Served:
            await asyncio.sleep(max(0.0, t0 + req.arrival - first - time.monotonic()))
            body = {
                "model": model,
                "prompt": [11] * req.prompt_tokens,
                "max_tokens": req.output_tokens,
                "ignore_eos": True,  # dummy weights: every request runs its trace length
                "stream": True,
                "vllm_xargs": xargs,
            }
            return await _stream_one(client, routers[i % len(routers)], body, time.monotonic())

        return list(await asyncio.gather(*(one(i, r) for i, r in enumerate(workload))))


def _write_csv(
    path: Path,
    workload: Sequence[TraceRequest],
    served: Sequence[Served],
    verdicts: Sequence[Attainment],
    routers: int,
) -> None:
    first = workload[0].arrival
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            [
                "index",
                "arrival_s",
                "prompt_tokens",
                "output_tokens",
                "router",
                "status",
                "ttft_s",
                "finish_s",
                "tokens",
                "max_gap_s",
                "met_standard",
                "met_strict",
            ]
        )
        for i, (req, s, v) in enumerate(zip(workload, served, verdicts, strict=True)):
            w.writerow(
                [
                    i,
                    f"{req.arrival - first:.4f}",
                    req.prompt_tokens,
                    req.output_tokens,
                    i % routers,
                    s.status,
                    "" if s.ttft_s is None else f"{s.ttft_s:.4f}",
                    "" if s.finish_s is None else f"{s.finish_s:.4f}",
                    s.tokens,
                    f"{s.max_gap_s:.4f}",
                    int(v.both),
                    int(v.strict),
                ]
            )


def run_arm(
    routers: Sequence[str],
    engines: Sequence[str],
    token: str,
    arm: Arm,
    workload: Sequence[TraceRequest],
    warmup: int,
    slo: SLO,
    model: str,
    out: Path,
    trace: str,
    rate: float,
) -> ArmRun:
    """Knobs in, warm-up, idle, one recorded replay; CSV and router log written."""
    _put_knobs(routers, token, arm.knobs())
    if warmup:
        asyncio.run(_replay(routers, workload[:warmup], slo, model))
    _wait_idle(engines)
    stem = f"{trace}-r{rate:g}-{arm.name}"
    before = [scrape(u) for u in routers]
    t0 = time.monotonic()
    with _Sampler(routers) as sampler:
        served = asyncio.run(_replay(routers, workload, slo, model))
    wall = time.monotonic() - t0
    after = [scrape(u) for u in routers]
    deltas = [_delta(a, b) for a, b in zip(after, before, strict=True)]
    verdicts = judge(served, slo)
    _write_csv(out / f"{stem}.csv", workload, served, verdicts, len(routers))
    counters = [
        {k: v for k, v in d.items() if k.startswith("sloserve_router_") and "_total" in k and v}
        for d in deltas
    ]
    (out / "routers" / f"{stem}.json").write_text(
        json.dumps(
            {"knobs": arm.knobs(), "counter_deltas": counters, "samples": sampler.samples}, indent=1
        )
        + "\n"
    )
    for i, url in enumerate(engines):
        try:
            text = httpx.get(url + "/metrics", timeout=10).text
        except httpx.HTTPError as exc:
            text = f"# scrape failed: {exc}\n"
        (out / "engines" / f"{stem}-engine{i}.prom").write_text(text)
    rat = ratios(verdicts)
    hist = _merged_hist(deltas, "sloserve_router_decision_seconds")
    count = hist.get("sloserve_router_decision_seconds_count", 0.0)
    ages = [s["state_age_s"] for s in sampler.samples if s["state_age_s"] is not None]
    return ArmRun(
        trace=trace,
        rate=rate,
        arm=arm.name,
        placement=arm.placement,
        shield=arm.shield,
        admission=arm.admission,
        requests=rat.requests,
        standard=rat.standard,
        strict=rat.strict,
        rejected=sum(1 for s in served if s.status in (429, 503)),
        errors=sum(1 for s in served if s.status not in (200, 429, 503)),
        shield_refusals=int(_sum(deltas, "sloserve_router_shield_refusals_total")),
        ttft_p99_s=p99([s.ttft_s for s in served if s.status == 200 and s.ttft_s is not None]),
        decision_p99_le_s=histogram_quantile_le(hist, "sloserve_router_decision_seconds", 0.99),
        decision_mean_s=hist.get("sloserve_router_decision_seconds_sum", 0.0) / max(count, 1),
        state_age_max_s=max(ages) if ages else math.nan,
        wall_s=wall,
    )


def added_latency(engine: str, router: str, samples: int, model: str) -> dict[str, float]:
    """One-token completions sent one at a time, direct and through a router, interleaved."""
    body = {"model": model, "prompt": [5, 6, 7], "max_tokens": 1, "ignore_eos": True}
    times: dict[str, list[float]] = {"direct": [], "router": []}
    with httpx.Client(timeout=60) as client:
        for i in range(samples + 5):
            for name, url in (("direct", engine), ("router", router)):
                t0 = time.perf_counter()
                client.post(url + "/v1/completions", json=body).raise_for_status()
                if i >= 5:  # the first five warm the connections
                    times[name].append(time.perf_counter() - t0)
    added = [r - d for r, d in zip(times["router"], times["direct"], strict=True)]
    out = {f"{k}_p50_ms": statistics.median(v) * 1e3 for k, v in times.items()}
    out |= {f"{k}_p99_ms": (p99(v) or math.nan) * 1e3 for k, v in times.items()}
    out["paired_added_median_ms"] = statistics.median(added) * 1e3
    out["samples"] = samples
    return out


def run(args: argparse.Namespace) -> int:
    console = Console()
    engines = [u.strip().rstrip("/") for u in args.engine_urls.split(",") if u.strip()]
    arms = [a for a in ARMS if a.name in {s.strip() for s in args.arms.split(",")}]
    unknown = {s.strip() for s in args.arms.split(",")} - set(ARM_NAMES)
    if not engines or unknown or not arms:
        raise ValueError(f"--engine-urls empty or unknown --arms {sorted(unknown)}")
    if args.admin_token_file is None:
        raise ValueError("--admin-token-file is required with --engine-urls")
    rates = [float(r) for r in args.rates.split(",")] if args.rates else [args.rate]
    oos_requests = args.oos_requests or args.requests
    plan = [(args.trace, r, args.requests) for r in rates]
    plan += [(trace, rate, oos_requests) for trace, rate in parse_runs(args.oos)]
    out: Path = args.out
    for sub in ("routers", "engines", "router-processes"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    slo = SLO(slo_class="standard", ttft_ms=args.slo_ttft_ms, tbt_ms=args.slo_tbt_ms)
    token = args.admin_token_file.read_text().strip()
    runs: list[ArmRun] = []
    summary: dict[str, Any] = {
        "label": args.label,
        "command": " ".join(sys.argv),
        "machine": f"{os.uname().nodename}: {os.cpu_count()} CPUs",
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "engines": engines,
        "arms": [asdict(a) for a in arms],
    }
    with fleet(out / "router-processes", token=token) as f:
        for _ in range(args.routers):
            f.start_router(
                engines=[u.removeprefix("http://") for u in engines], model=args.model_name
            )
        f.wait_ready(timeout_s=120)
        routers = [r.url for r in f.routers]
        for trace, rate, requests in plan:
            workload = build_workload(
                WorkloadSpec(
                    trace=trace,
                    requests=requests,
                    rate=rate,
                    arrival="trace",
                    seed=args.seed,
                    segment=args.segment,
                )
            )
            for arm in arms:
                console.print(f"{trace} @ {rate:g} req/s: {arm.name} ...")
                r = run_arm(
                    routers,
                    engines,
                    token,
                    arm,
                    workload,
                    args.warmup,
                    slo,
                    args.model_name,
                    out,
                    trace,
                    rate,
                )
                runs.append(r)
                console.print(
                    f"  standard {r.standard:.3f} strict {r.strict:.3f} "
                    f"rejected {r.rejected} errors {r.errors} ({r.wall_s:.0f} s)"
                )
                summary["runs"] = [asdict(x) for x in runs]
                (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        if args.latency_samples:
            _put_knobs(routers, token, ARMS[-1].knobs())
            _wait_idle(engines)
            summary["added_latency"] = added_latency(
                engines[0], routers[0], args.latency_samples, args.model_name
            )
    summary["runs"] = [asdict(x) for x in runs]
    summary["max_rate_at_90"] = {
        arm.name: {
            key: max_rate_at(runs, arm.name, args.trace, key, 0.9) for key in ("standard", "strict")
        }
        for arm in arms
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    table = _table(runs, args.label)
    console.print(table)
    with (out / "summary.txt").open("w") as fh:
        Console(file=fh, width=160).print(table)
        Console(file=fh, width=160).print(summary.get("added_latency", {}))
        Console(file=fh, width=160).print({"max_rate_at_90": summary["max_rate_at_90"]})
    return 0


def _table(runs: Sequence[ArmRun], label: str) -> Table:
    table = Table(title=f"{label} (rejections and errors count as misses)")
    for col in (
        "trace",
        "rate",
        "arm",
        "standard",
        "strict",
        "rejected",
        "errors",
        "refusals",
        "TTFT p99 (served)",
        "decision p99 ≤",
        "state age max",
    ):
        table.add_column(col)
    for r in runs:
        table.add_row(
            r.trace,
            f"{r.rate:g}",
            r.arm,
            f"{r.standard:.3f}",
            f"{r.strict:.3f}",
            str(r.rejected),
            str(r.errors),
            str(r.shield_refusals),
            "-" if r.ttft_p99_s is None else f"{r.ttft_p99_s:.3f} s",
            f"{r.decision_p99_le_s * 1e3:g} ms",
            f"{r.state_age_max_s:.3f} s",
        )
    return table
