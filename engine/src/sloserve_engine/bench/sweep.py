"""A rate × policy × segment sweep of simulated replays and its JSON report (pure apart from
the runs), and the rules every report (simulated or GPU) aggregates runs by.

**Max rate** is the highest swept rate whose attainment (mean over segments and seeds)
reaches :data:`ATTAINMENT_GOAL` *and* that cannot be gamed by starving requests until the
trace ends: every request of every slice finished within :data:`DRAIN_BOUND_S` of the last
arrival, and p99 TTFT is at most :data:`TTFT_P99_BOUND_FACTOR` × the TTFT SLO.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ..contract.knobs import Knobs, SLODefaults
from ..contract.slo import SLO
from ..policy import make_policy
from ..sim.costmodel import SimProfile
from ..sim.engine import SimConfig
from ..sim.metrics import RunMetrics
from ..sim.runner import RunResult, replay
from ..sim.workload import WorkloadSpec, build_workload
from .capacity import CapacityBound, capacity_bound
from .workloads import workload_record

ATTAINMENT_GOAL = 0.9
"""``max_rate`` is the highest swept rate whose SLO attainment reaches this."""
DRAIN_BOUND_S = 30.0
"""A rate counts only if every request finished within this long after the last arrival: a
policy that defers late requests until arrivals stop cannot pass (a fixed 30 s, a third of
a 1,500-request azure-conv slice at 16 req/s)."""
TTFT_P99_BOUND_FACTOR = 10.0
"""... and only if p99 TTFT is at most this many times the TTFT SLO (10 s for 1 s)."""


TUNED_STOCK_NAME = "vllm-tuned"
TUNED_STOCK = {"max_num_batched_tokens": 4096, "long_prefill_token_threshold": 0}
"""The tuned-stock baseline: stock vLLM with the chunked-prefill budget and
``long_prefill_token_threshold`` that a simulated sweep on azure-conv rows 0-1,499 picked
(budget 2,048/4,096/8,192 × threshold 0/512/1,024/2,048 at 14-17 req/s, commit 448b407;
docs/benchmarks.md, "Honest evaluation"): 4,096 tied vLLM's 8,192 on strict max rate and
halved the longest gap; every threshold lowered the max rate. Under the cost model refitted
later (quadratic attention term) 4,096 is 1 req/s worse than 8,192 on that trace and better
on azure-code, which is why every comparison takes the better of stock and tuned stock.
``bench gpu`` runs it as ``--schedulers stock --tag tuned --max-num-batched-tokens 4096``."""


def engine_for(name: str, config: SimConfig) -> tuple[str, SimConfig]:
    """The policy and engine settings a sweep entry runs (``vllm-tuned``: stock, tuned)."""
    if name == TUNED_STOCK_NAME:
        return "vllm", replace(config, **TUNED_STOCK)  # type: ignore[arg-type]
    return name, config


@dataclass(frozen=True, slots=True)
class SweepRun:
    policy: str
    rate: float
    result: RunResult
    workload: WorkloadSpec | None = None
    """What was replayed (segment, seed, SLO mix); ``None``: not recorded."""


def run_sweep(
    policies: Sequence[str],
    rates: Sequence[float],
    workloads: Sequence[WorkloadSpec],
    profile: SimProfile,
    config: SimConfig,
    slo: SLO,
    progress: Callable[[str, float, int], None] | None = None,
) -> list[SweepRun]:
    """Replay every workload slice at every rate under every policy (same requests per rate).

    ``progress(policy, rate, finished_now)`` is called as requests finish.
    """
    knobs = Knobs(slo_defaults=SLODefaults.of(slo))
    runs: list[SweepRun] = []
    for rate in rates:
        for workload in workloads:
            spec = replace(workload, rate=rate)
            requests = build_workload(spec)
            for name in policies:
                policy_name, engine = engine_for(name, config)
                policy = make_policy(policy_name, knobs, profile.step)

                def tick(k: int, name: str = name, rate: float = rate) -> None:
                    if progress is not None:
                        progress(name, rate, k)

                result = replay(requests, policy, profile, engine, slo, tick)
                runs.append(SweepRun(name, rate, result, spec))
    return runs


def metrics_record(m: RunMetrics) -> dict[str, Any]:
    """The latency and attainment fields every run row carries, simulated or measured."""
    return {
        "requests": m.requests,
        "completed": m.completed,
        "ttft_p50": m.ttft_p50,
        "ttft_p90": m.ttft_p90,
        "ttft_p99": m.ttft_p99,
        "tbt_p50": m.tbt_p50,
        "tbt_p99": m.tbt_p99,
        "slo_attainment": m.slo_attainment,
        "strict_attainment": m.strict_attainment,
        "class_attainment": {
            k: {"standard": v.standard, "strict": v.strict, "requests": v.requests}
            for k, v in m.class_attainment.items()
        },
        "drain_s": m.drain_s,
        "max_tbt_p99": m.max_tbt_p99,
        "stalls_over_200ms": m.stalls_over_200ms,
        "goodput": m.goodput,
        "output_tok_s": m.output_tok_s,
    }


def run_record(run: SweepRun) -> dict[str, Any]:
    """One entry of the report's ``runs`` list (times in seconds)."""
    m = run.result.metrics
    kv = run.result.kv_usage
    return {
        "policy": run.policy,
        "rate": run.rate,
        **(workload_record(run.workload) if run.workload is not None else {}),
        **metrics_record(m),
        "tbt_p90": m.tbt_p90,
        "stall_rate": m.stall_rate,
        "preemptions": run.result.preemptions,
        "preemptions_by_mode": {
            "recompute": run.result.preemptions_recompute,
            "swap": run.result.preemptions_swap,
        },
        "kv_usage_mean": float(kv[:, 1].mean()) if len(kv) else 0.0,
        "kv_usage_max": float(kv[:, 1].max()) if len(kv) else 0.0,
        "predictor_mae_tokens": m.predictor_mae,
        "tpot_p50": m.extra["tpot_p50"],
        "makespan": m.makespan,
        "steps": run.result.steps,
        "wall_seconds": run.result.wall_seconds,
        "speedup_vs_real_time": m.makespan / max(run.result.wall_seconds, 1e-9),
    }


def rate_counts(row: Mapping[str, Any], slo_ttft_s: float = 1.0) -> bool:
    """The run cannot have been gamed: everything finished soon after the last arrival and
    the TTFT tail is bounded. Rows without ``drain_s`` (older reports) are not checked."""
    drain = row.get("drain_s")
    if drain is None:
        return True
    ttft_p99 = float(row["ttft_p99"])
    return (
        math.isfinite(float(drain))
        and float(drain) <= DRAIN_BOUND_S
        and ttft_p99 <= TTFT_P99_BOUND_FACTOR * slo_ttft_s
    )


def max_rates(
    records: Iterable[Mapping[str, Any]],
    goal: float = ATTAINMENT_GOAL,
    key: str = "slo_attainment",
    slo_ttft_s: float = 1.0,
) -> dict[str, float | None]:
    """Per policy, the highest swept rate whose mean ``key`` over its rows (segments, seeds)
    is >= ``goal`` and whose every row passes :func:`rate_counts`; None if no rate does.

    ``records`` are run rows (``policy``, ``rate``, ``key``), simulated or measured on a GPU,
    so both reports agree on what "max rate" means.
    """
    groups: dict[tuple[str, float], list[Mapping[str, Any]]] = defaultdict(list)
    for row in records:
        groups[(str(row["policy"]), float(row["rate"]))].append(row)
    out: dict[str, float | None] = {}
    for (policy, rate), rows in sorted(groups.items()):
        values = [float(r[key]) for r in rows if r.get(key) is not None]
        ok = (
            bool(values)
            and sum(values) / len(values) >= goal
            and all(rate_counts(r, slo_ttft_s) for r in rows)
        )
        best = out.get(policy)
        if ok and (best is None or rate > best):
            out[policy] = rate
        else:
            out.setdefault(policy, None)
    return out


SPREAD_KEYS = (
    "slo_attainment",
    "strict_attainment",
    "ttft_p50",
    "ttft_p90",
    "ttft_p99",
    "tbt_p50",
    "tbt_p99",
    "drain_s",
    "stalls_over_200ms",
    "preemptions",
)
"""Numbers :func:`aggregate` reports as mean and spread over segments and seeds."""


def aggregate(records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per (workload, policy, rate): for each of :data:`SPREAD_KEYS`, the mean and
    the sample standard deviation, minimum and maximum over its segments and seeds; and per
    SLO class, the mean standard and strict attainment."""
    groups: dict[tuple[str, str, float], list[Mapping[str, Any]]] = defaultdict(list)
    for row in records:
        groups[(str(row.get("workload", "")), str(row["policy"]), float(row["rate"]))].append(row)
    out: list[dict[str, Any]] = []
    for (workload, policy, rate), rows in sorted(groups.items()):
        agg: dict[str, Any] = {
            "workload": workload,
            "policy": policy,
            "rate": rate,
            "slices": len(rows),
            "requests": sum(int(r["requests"]) for r in rows),
            "counts": all(rate_counts(r) for r in rows),
        }
        for key in SPREAD_KEYS:
            values = np.array([float(r[key]) for r in rows if r.get(key) is not None])
            if not values.size:
                continue
            agg[key] = float(values.mean())
            agg[f"{key}_std"] = float(values.std(ddof=1)) if values.size > 1 else 0.0
            agg[f"{key}_min"] = float(values.min())
            agg[f"{key}_max"] = float(values.max())
        classes: dict[str, list[Mapping[str, float]]] = defaultdict(list)
        for r in rows:
            for name, ratios in (r.get("class_attainment") or {}).items():
                classes[name].append(ratios)
        agg["class_attainment"] = {
            name: {
                "standard": float(np.mean([v["standard"] for v in values])),
                "strict": float(np.mean([v["strict"] for v in values])),
            }
            for name, values in sorted(classes.items())
        }
        out.append(agg)
    return out


def format_spread(row: Mapping[str, Any], key: str, fmt: str) -> str:
    """``mean ± std (min–max)`` of an :func:`aggregate` row's ``key``."""
    f = fmt.format
    return f"{f(row[key])} ± {f(row[key + '_std'])} ({f(row[key + '_min'])}–{f(row[key + '_max'])})"


BASELINES = ("vllm", "vllm-tuned")
"""Stock vLLM with its defaults, and stock vLLM with the chunked-prefill knobs a user would
tune (:data:`TUNED_STOCK`): every "sloserve vs stock" ratio is against the better of them."""


def versus_baseline(
    summary: Sequence[Mapping[str, Any]],
    policy: str = "sloserve",
    key: str = "strict_attainment",
    baselines: Sequence[str] = BASELINES,
) -> dict[str, Any]:
    """``policy`` against the better baseline of one workload's aggregated rows.

    The better baseline is the one with the higher max rate under ``key`` (ties: the higher
    mean ``key`` over the rates both swept). Reported: both max rates and their ratio, the
    lowest swept rate where that baseline's mean ``key`` is below 90 %, and ``policy``'s
    mean ``key`` there (the issue's "≥ 95 % where the baseline falls to 90 %").
    """
    rows = {(str(r["policy"]), float(r["rate"])): r for r in summary}
    present = [b for b in baselines if any(p == b for p, _ in rows)]
    if not present or not any(p == policy for p, _ in rows):
        return {}
    rates: dict[str, float | None] = {}
    for (p, rate), r in sorted(rows.items()):
        if r["counts"] and r[key] >= ATTAINMENT_GOAL:
            rates[p] = rate
        else:
            rates.setdefault(p, None)

    def strength(b: str) -> tuple[float, float]:
        shared = [rows[(b, rate)][key] for (p, rate) in rows if p == policy and (b, rate) in rows]
        return (rates.get(b) or 0.0, float(np.mean(shared)) if shared else 0.0)

    better = max(present, key=strength)
    falls = sorted(
        rate for (p, rate), r in rows.items() if p == better and r[key] < ATTAINMENT_GOAL
    )
    knee = falls[0] if falls else None
    mine, theirs = rates.get(policy), rates.get(better)
    return {
        "better_baseline": better,
        "max_rate": {b: rates.get(b) for b in [*present, policy]},
        "max_rate_ratio": mine / theirs if mine and theirs else None,
        "baseline_below_goal_at": knee,
        "policy_at_that_rate": (
            rows[(policy, knee)][key] if knee is not None and (policy, knee) in rows else None
        ),
        "baseline_at_that_rate": rows[(better, knee)][key] if knee is not None else None,
    }


def sweep_report(
    runs: Sequence[SweepRun],
    workloads: Sequence[WorkloadSpec],
    profile: SimProfile,
    config: SimConfig,
    slo: SLO,
) -> dict[str, Any]:
    bound: CapacityBound = capacity_bound(
        [r for w in workloads for r in build_workload(w)], profile, config
    )
    records = [run_record(r) for r in runs]
    first = workloads[0]
    return {
        "runs": records,
        "summary": aggregate(records),
        "max_rate": max_rates(records, slo_ttft_s=slo.ttft_s),
        "max_rate_strict": max_rates(records, key="strict_attainment", slo_ttft_s=slo.ttft_s),
        "max_rate_rule": {
            "goal": ATTAINMENT_GOAL,
            "drain_bound_s": DRAIN_BOUND_S,
            "ttft_p99_bound_s": TTFT_P99_BOUND_FACTOR * slo.ttft_s,
        },
        "capacity_bound": bound.rate,
        "capacity": bound.as_dict(),
        "config": {
            "trace": first.trace,
            "workload": workload_record(first)["workload"],
            "requests": first.requests,
            "segments": sorted({w.segment for w in workloads}),
            "seeds": sorted({w.seed for w in workloads}),
            "arrival": first.arrival,
            "kv_tokens": config.kv_tokens,
            "max_num_batched_tokens": config.max_num_batched_tokens,
            "long_prefill_token_threshold": config.long_prefill_token_threshold,
            "scheduling": config.scheduling,
            "profile": profile.name,
            "slo_ttft_s": slo.ttft_s,
            "slo_tbt_s": slo.tbt_s,
        },
    }
