"""Ablations of the ``sloserve`` policy in the simulator: switch one component at a time.

Each row replays the same workload (Azure conversation trace, 1,500 requests,
97,488 KV tokens, async scheduling, SLO TTFT 1 s / TPOT 100 ms) with the
``sloserve`` spec, changed as the row says, and prints the headline numbers.

    .venv/bin/python docs/examples/policy_ablation.py --rates 16,17
"""

from __future__ import annotations

import argparse
from dataclasses import replace

from sloserve_engine.contract.knobs import Knobs
from sloserve_engine.contract.slo import SLO
from sloserve_engine.policy.batching import Batching
from sloserve_engine.policy.composed import ComposedPolicy, PolicySpec, VictimRule
from sloserve_engine.policy.kvgate import Gate, GateConfig
from sloserve_engine.policy.ordering import AdmitRule, OrderingConfig
from sloserve_engine.policy.presets import SLOSERVE
from sloserve_engine.sim import SimConfig, load_profile
from sloserve_engine.sim.runner import replay
from sloserve_engine.sim.workload import WorkloadSpec, build_workload

NO_RESERVE = Knobs(reservation_ratio=0.0)

ABLATIONS: dict[str, tuple[PolicySpec, Knobs]] = {
    "sloserve": (SLOSERVE, Knobs()),
    "reserve 2%": (SLOSERVE, Knobs(reservation_ratio=0.02)),
    "reserve 1%": (SLOSERVE, Knobs(reservation_ratio=0.01)),
    "no reserve": (SLOSERVE, NO_RESERVE),
    "no reserve, recompute only": (
        SLOSERVE,
        Knobs(reservation_ratio=0.0, preemption_mode="recompute"),
    ),
    "+ lending gate (p=0.9)": (
        replace(SLOSERVE, gate=GateConfig(gate=Gate.LENDING)),
        Knobs(),
    ),
    "+ reservation gate (p=0.9)": (
        replace(SLOSERVE, gate=GateConfig(gate=Gate.RESERVATION)),
        Knobs(),
    ),
    "ordering: deadline, resumed first": (
        replace(SLOSERVE, ordering=OrderingConfig(admit_rule=AdmitRule.DEADLINE)),
        Knobs(),
    ),
    "ordering: fcfs": (
        replace(SLOSERVE, ordering=OrderingConfig(admit_rule=AdmitRule.FCFS)),
        Knobs(),
    ),
    "no hopeless ageing delay": (
        replace(SLOSERVE, ordering=replace(SLOSERVE.ordering, hopeless_delay_s=0.0)),
        Knobs(),
    ),
    "hopeless ageing delay 10 s": (
        replace(SLOSERVE, ordering=replace(SLOSERVE.ordering, hopeless_delay_s=10.0)),
        Knobs(),
    ),
    "batching: head-of-line": (replace(SLOSERVE, batching=Batching.HEAD), Knobs()),
    "batching: tetris": (replace(SLOSERVE, batching=Batching.TETRIS), Knobs()),
    "no reserve, victims: most TPOT slack": (
        replace(SLOSERVE, victims=VictimRule.SLACK),
        NO_RESERVE,
    ),
    "no reserve, victims: newest (vLLM)": (
        replace(SLOSERVE, victims=VictimRule.ADMISSION),
        NO_RESERVE,
    ),
    "chunks: no banked time": (replace(SLOSERVE, chunk_bank_cap=1.0), Knobs()),
    "chunks: fixed 8192 budget": (replace(SLOSERVE, dynamic_chunking=False), Knobs()),
    "no decodes-first": (replace(SLOSERVE, decodes_first=False), Knobs()),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="16,17")
    parser.add_argument("--only", default="", help="comma-separated row names (default: all)")
    parser.add_argument("--arrival", default="trace", choices=["trace", "poisson", "gamma"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    profile = load_profile()
    rows = {k: v for k, v in ABLATIONS.items() if not args.only or k in args.only.split(",")}
    for rate in (float(x) for x in args.rates.split(",")):
        requests = build_workload(WorkloadSpec(rate=rate, arrival=args.arrival, seed=args.seed))
        print(f"rate {rate} req/s")
        for name, (spec, knobs) in rows.items():
            policy = ComposedPolicy(spec, knobs, profile.step)
            result = replay(requests, policy, profile, SimConfig(), SLO())
            m = result.metrics
            print(
                f"  {name:36s} attain {m.slo_attainment:6.3f}  TTFT p99 {m.ttft_p99:6.2f} s"
                f"  TBT p99 {m.tbt_p99 * 1e3:5.1f} ms  stalls>200ms {m.stalls_over_200ms:3d}"
                f"  preemptions {result.preemptions:4d}",
                flush=True,
            )


if __name__ == "__main__":
    main()
