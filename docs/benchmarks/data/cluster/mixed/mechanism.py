"""Admission off, slo-greedy, azure-conv mixed 0.5: of the interactive requests the router
predicted to miss 250 ms (it would have rejected them with admission on), how many met it?"""
import numpy as np
from sloserve_engine.bench.cluster import Setup
from sloserve_engine.contract.slo import SLO
from sloserve_engine.router.knobs import RouterKnobs
from sloserve_engine.sim import SimConfig, load_profile
from sloserve_engine.sim.cluster import ClusterConfig, simulate_cluster, verdict
from sloserve_engine.sim.workload import build_workload
setup = Setup(slo_mix=0.5)
for rate in (72.0, 80.0, 88.0):
    for seg in (0, 1, 2):
        reqs = build_workload(setup.workload(rate, seg))
        res = simulate_cluster(reqs, RouterKnobs(placement="slo-greedy", admission=False), load_profile(setup.profile),
                               SimConfig(kv_tokens=setup.kv_tokens), SLO(ttft_ms=1000, tbt_ms=100), ClusterConfig(engines=4, regions=2))
        for cls in ("interactive", "batch"):
            outs = [o for o in res.outcomes if o.slo.slo_class == cls]
            over = [o for o in outs if o.predicted_ttft is not None and o.predicted_ttft > o.slo.ttft_s]
            met = [o for o in over if verdict(o, res.slo).both]
            ratio = [ (o.first_token - o.arrival) / o.predicted_ttft for o in outs if o.predicted_ttft]
            print(f"rate {rate:g} seg {seg} {cls:11s}: predicted over target {len(over):4d} of {len(outs)}, of them met {len(met):4d}; actual/predicted TTFT median {np.median(ratio):.2f}")
