"""After arrivalWorkByTtft (passing work), admission on, slo-greedy, azure-conv mixed 0.5:
the batch requests that were placed and still had no first token by 5 s. What did the router
see when it placed them (predicted TTFT, the wait ahead, the passing rates it applied, the
engine's free and reserved KV and its drain estimate)?"""
import numpy as np

from sloserve_engine.bench.cluster import Setup
from sloserve_engine.contract.slo import SLO
from sloserve_engine.router import placement
from sloserve_engine.router.knobs import RouterKnobs
from sloserve_engine.sim import SimConfig, load_profile
from sloserve_engine.sim.cluster import ClusterConfig, simulate_cluster
from sloserve_engine.sim.workload import build_workload

seen: dict[tuple[str, str], tuple[float, ...]] = {}
judge = placement.judge


def recording_judge(state, request, cost):  # type: ignore[no-untyped-def]
    c = judge(state, request, cost)
    s = state.snapshot
    tight = [a for a in s.arrival_work_by_ttft if a.ttft_s < request.slo.ttft_s]
    seen[(request.request_id, state.engine_id)] = (
        c.predicted_ttft_s,
        s.queue_ahead(placement.start_by(state, request, cost))[0],
        sum(a.work_per_s for a in tight),
        sum(a.kv_tokens_per_s for a in tight) / s.kv_drain_tokens_per_s
        if s.kv_drain_tokens_per_s else 0.0,
        s.kv_free_tokens, s.kv_reserved_tokens, s.kv_drain_tokens_per_s,
    )
    return c


placement.judge = recording_judge
setup = Setup(slo_mix=0.5)
for rate in (80.0, 88.0):
    for seg in (0, 1, 2):
        seen.clear()
        reqs = build_workload(setup.workload(rate, seg))
        res = simulate_cluster(reqs, RouterKnobs(placement="slo-greedy", admission=True),
                               load_profile(setup.profile), SimConfig(kv_tokens=setup.kv_tokens),
                               SLO(ttft_ms=1000, tbt_ms=100), ClusterConfig(engines=4, regions=2))
        rows = []
        for r, o in zip(reqs, res.outcomes, strict=True):
            if o.slo is None or o.slo.slo_class != "batch" or o.first_token is None:
                continue
            if o.first_token - o.arrival > o.slo.ttft_s:
                rows.append((o.first_token - o.arrival, *seen[(r.request_id, f"e{o.engine}")]))
        if not rows:
            print(f"rate {rate:g} seg {seg}: no late batch request")
            continue
        m = np.median(np.array(rows), axis=0)
        print(f"rate {rate:g} seg {seg}: {len(rows)} late batch; medians: actual TTFT {m[0]:.2f} s,"
              f" predicted {m[1]:.2f} s, wait ahead {m[2]:.2f} s, passing prefill rate {m[3]:.2f},"
              f" passing KV rate / drain {m[4]:.2f}, free KV {m[5]:.0f}, reserved {m[6]:.0f},"
              f" drain {m[7]:.0f} tokens/s")
