"""In-sample constants of ``sloserve``, swept one at a time: azure-conv (tuning set) vs azure-code.

Every constant below was chosen on the first 1,500 requests of the Azure
conversation trace. Each row changes one of them and replays both the tuning
set (azure-conv at 16 and 17 req/s) and a workload never used to choose
anything (azure-code, first 700 requests at 2.5 req/s, the 2026-12-03 GPU
run's workload), with 97,488 KV tokens, async scheduling, SLO TTFT 1 s / TPOT
100 ms. Cells: attainment / p99 TTFT. The ``default`` row is the shipped value.

    .venv/bin/python docs/examples/constant_sweep.py            # ~3 min on one core
"""

from __future__ import annotations

import argparse
from dataclasses import replace

from sloserve_engine.contract.knobs import Knobs
from sloserve_engine.contract.slo import SLO
from sloserve_engine.policy.composed import ComposedPolicy, PolicySpec
from sloserve_engine.policy.presets import SLOSERVE
from sloserve_engine.sim import SimConfig, load_profile
from sloserve_engine.sim.runner import replay
from sloserve_engine.sim.workload import WorkloadSpec, build_workload

CASES = (("azure-conv", 1500, 16.0), ("azure-conv", 1500, 17.0), ("azure-code", 700, 2.5))
"""(trace, requests, rate): the tuning set at two rates, then the held-out trace."""


def _ordering(**changes: float) -> PolicySpec:
    return replace(SLOSERVE, ordering=replace(SLOSERVE.ordering, **changes))


def _buckets(edges: tuple[int, ...]) -> PolicySpec:
    assert SLOSERVE.predictor is not None
    return replace(SLOSERVE, predictor=replace(SLOSERVE.predictor, prompt_bucket_edges=edges))


ROWS: list[tuple[str, str, PolicySpec, float]] = [
    ("default", "", SLOSERVE, 0.05),
    ("hopeless delay (s)", "0", _ordering(hopeless_delay_s=0.0), 0.05),
    ("hopeless delay (s)", "2", _ordering(hopeless_delay_s=2.0), 0.05),
    ("hopeless delay (s)", "10", _ordering(hopeless_delay_s=10.0), 0.05),
    ("hopeless load exponent", "0 (constant)", _ordering(hopeless_load_exponent=0.0), 0.05),
    ("hopeless load exponent", "1", _ordering(hopeless_load_exponent=1.0), 0.05),
    ("start lead (steps)", "0", _ordering(start_lead_steps=0.0), 0.05),
    ("start lead (steps)", "4", _ordering(start_lead_steps=4.0), 0.05),
    ("protection (s)", "2", replace(SLOSERVE, protect_after_s=2.0), 0.05),
    ("protection (s)", "20", replace(SLOSERVE, protect_after_s=20.0), 0.05),
    ("bank cap (× TBT)", "1.0", replace(SLOSERVE, chunk_bank_cap=1.0), 0.05),
    ("bank cap (× TBT)", "2.0", replace(SLOSERVE, chunk_bank_cap=2.0), 0.05),
    ("chunk prior context", "off", replace(SLOSERVE, chunk_prior_context=False), 0.05),
    ("reserve", "0", SLOSERVE, 0.0),
    ("reserve", "0.02", SLOSERVE, 0.02),
    ("reserve", "0.10", SLOSERVE, 0.10),
    ("bucket edges", "none", _buckets(()), 0.05),
    ("bucket edges", "512,2048", _buckets((512, 2048)), 0.05),
]
"""(constant, value, spec, reservation ratio); defaults: delay 5 s, exponent 2, lead 2,
protection 10 s, bank cap 1.5, prior context on, reserve 0.05, edges 128..4096."""


def cell(spec: PolicySpec, reserve: float, trace: str, requests: int, rate: float) -> str:
    profile = load_profile()
    knobs = Knobs(reservation_ratio=reserve)
    workload = build_workload(WorkloadSpec(trace=trace, requests=requests, rate=rate))
    policy = ComposedPolicy(spec, knobs, profile.step)
    m = replay(workload, policy, profile, SimConfig(), SLO()).metrics
    return f"{m.slo_attainment:.1%} / {m.ttft_p99:.2f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args()
    head = " | ".join(f"{t} {r:g} req/s" for t, _, r in CASES)
    print(f"| constant | value | {head} |")
    print("|---|---|" + "---|" * len(CASES))
    for name, value, spec, reserve in ROWS:
        cells = " | ".join(cell(spec, reserve, *case) for case in CASES)
        print(f"| {name} | {value} | {cells} |", flush=True)


if __name__ == "__main__":
    main()
