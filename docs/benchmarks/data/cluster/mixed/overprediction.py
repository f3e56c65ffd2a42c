"""After the queueByStart fix, admission off, slo-greedy, azure-conv mixed 0.5: of the
interactive requests still predicted over 250 ms at placement, which term of predict_ttft
made the prediction (the wait ahead in the engine's order, this router's own pending
placements, the own prefill, or the wait for KV), and did they meet 250 ms anyway?"""
from collections import Counter

import numpy as np

from sloserve_engine.bench.cluster import Setup
from sloserve_engine.contract.slo import SLO
from sloserve_engine.router import placement
from sloserve_engine.router.knobs import RouterKnobs
from sloserve_engine.router.snapshot import kv_wait_s, prefill_time_s
from sloserve_engine.sim import SimConfig, load_profile
from sloserve_engine.sim.cluster import ClusterConfig, simulate_cluster, verdict
from sloserve_engine.sim.workload import build_workload

seen: dict[tuple[str, str], tuple[float, float, float, float]] = {}
judge = placement.judge


def recording_judge(state, request, cost):  # type: ignore[no-untyped-def]
    s, p, d = state.snapshot, state.pending, request.demand
    running = s.running + p.requests
    ahead_s, ahead_tokens = s.queue_ahead(placement.start_by(state, request, cost))
    pend = prefill_time_s(cost, p.prompt_tokens + d.prompt_tokens, running, s.max_batched_tokens)
    own = prefill_time_s(cost, d.prompt_tokens, running, s.max_batched_tokens)
    deficit = ahead_tokens + p.prompt_tokens + d.prompt_tokens - s.kv_free_tokens
    seen[(request.request_id, state.engine_id)] = (
        ahead_s, pend - own, own, kv_wait_s(deficit, s.kv_drain_tokens_per_s)
    )
    return judge(state, request, cost)


placement.judge = recording_judge
setup = Setup(slo_mix=0.5)
for rate in (80.0, 88.0):
    for seg in (0, 1, 2):
        seen.clear()
        reqs = build_workload(setup.workload(rate, seg))
        res = simulate_cluster(reqs, RouterKnobs(placement="slo-greedy", admission=False),
                               load_profile(setup.profile), SimConfig(kv_tokens=setup.kv_tokens),
                               SLO(ttft_ms=1000, tbt_ms=100), ClusterConfig(engines=4, regions=2))
        causes: Counter[str] = Counter()
        met: Counter[str] = Counter()
        for r, o in zip(reqs, res.outcomes, strict=True):
            if o.slo is None or o.slo.slo_class != "interactive" or o.predicted_ttft is None:
                continue
            if o.predicted_ttft <= o.slo.ttft_s:
                continue
            ahead, pending, own, kv = seen[(r.request_id, f"e{o.engine}")]
            queued = ahead + pending + own
            terms = {"kv wait": kv + own} if kv + own > queued else {
                "wait ahead": ahead, "pending": pending, "own prefill": own}
            cause = max(terms, key=lambda k: terms[k])
            causes[cause] += 1
            met[cause] += verdict(o, res.slo).both
        total = sum(causes.values())
        parts = ", ".join(f"{k} {n} (met {met[k]})" for k, n in causes.most_common())
        print(f"rate {rate:g} seg {seg}: {total} interactive predicted over 250 ms; largest term: {parts}")
