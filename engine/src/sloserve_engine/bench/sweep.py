"""A rate × policy sweep of simulated replays and its JSON report (pure apart from the runs)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from ..policy import make_policy
from ..policy.knobs import PolicyKnobs
from ..policy.views import SLOTarget
from ..sim.costmodel import SimProfile
from ..sim.engine import SimConfig
from ..sim.metrics import SLO
from ..sim.runner import RunResult, replay
from ..sim.workload import WorkloadSpec, build_workload
from .capacity import CapacityBound, capacity_bound

ATTAINMENT_GOAL = 0.9
"""``max_rate`` is the highest swept rate whose SLO attainment reaches this."""


@dataclass(frozen=True, slots=True)
class SweepRun:
    policy: str
    rate: float
    result: RunResult


def run_sweep(
    policies: Sequence[str],
    rates: Sequence[float],
    workload: WorkloadSpec,
    profile: SimProfile,
    config: SimConfig,
    slo: SLO,
    progress: Callable[[str, float, int], None] | None = None,
) -> list[SweepRun]:
    """Replay the workload at every rate under every policy (same requests per rate).

    ``progress(policy, rate, finished_now)`` is called as requests finish.
    """
    knobs = PolicyKnobs(default_slo=SLOTarget(ttft_s=slo.ttft_s, tbt_s=slo.tbt_s))
    runs: list[SweepRun] = []
    for rate in rates:
        requests = build_workload(replace(workload, rate=rate))
        for name in policies:
            policy = make_policy(name, knobs, profile.step)

            def tick(k: int, name: str = name, rate: float = rate) -> None:
                if progress is not None:
                    progress(name, rate, k)

            result = replay(requests, policy, profile, config, slo, tick)
            runs.append(SweepRun(name, rate, result))
    return runs


def run_record(run: SweepRun) -> dict[str, Any]:
    """One entry of the report's ``runs`` list (times in seconds)."""
    m = run.result.metrics
    kv = run.result.kv_usage
    return {
        "policy": run.policy,
        "rate": run.rate,
        "requests": m.requests,
        "completed": m.completed,
        "ttft_p50": m.ttft_p50,
        "ttft_p90": m.ttft_p90,
        "ttft_p99": m.ttft_p99,
        "tbt_p50": m.tbt_p50,
        "tbt_p90": m.tbt_p90,
        "tbt_p99": m.tbt_p99,
        "slo_attainment": m.slo_attainment,
        "stall_rate": m.stall_rate,
        "goodput": m.goodput,
        "output_tok_s": m.output_tok_s,
        "max_tbt_p99": m.max_tbt_p99,
        "stalls_over_200ms": m.stalls_over_200ms,
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


def max_rates(
    records: Iterable[Mapping[str, Any]], goal: float = ATTAINMENT_GOAL
) -> dict[str, float | None]:
    """Per policy, the highest swept rate with attainment >= ``goal`` (None if none).

    ``records`` are run rows (``policy``, ``rate``, ``slo_attainment``), simulated or
    measured on a GPU, so both reports agree on what "max rate" means.
    """
    out: dict[str, float | None] = {}
    for row in records:
        policy, rate = str(row["policy"]), float(row["rate"])
        best = out.get(policy)
        if float(row["slo_attainment"]) >= goal and (best is None or rate > best):
            out[policy] = rate
        else:
            out.setdefault(policy, None)
    return out


def sweep_report(
    runs: Sequence[SweepRun],
    workload: WorkloadSpec,
    profile: SimProfile,
    config: SimConfig,
    slo: SLO,
) -> dict[str, Any]:
    bound: CapacityBound = capacity_bound(build_workload(workload), profile, config)
    records = [run_record(r) for r in runs]
    return {
        "runs": records,
        "max_rate": max_rates(records),
        "capacity_bound": bound.rate,
        "capacity": bound.as_dict(),
        "config": {
            "trace": workload.trace,
            "requests": workload.requests,
            "arrival": workload.arrival,
            "kv_tokens": config.kv_tokens,
            "scheduling": config.scheduling,
            "profile": profile.name,
            "slo_ttft_s": slo.ttft_s,
            "slo_tbt_s": slo.tbt_s,
        },
    }
