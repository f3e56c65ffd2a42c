"""How wrong is the published KV drain rate? For every snapshot an engine publishes in the
cluster simulator (azure-conv, segments 0-2, slo-greedy, admission on, 4 engines), compare:

- published: kvDrainTokensPerS (held KV over predicted remaining steps, summed);
- actual: KV tokens the engine really freed (finished + preempted requests, counted at the
  moment the simulated engine releases the blocks) in the next 2 s, per second;
- measured: kvFreedTokensPerS, the FreedMeter's rate over the previous 2 s (what the new KV
  wait prices with).

Only snapshots taken at >= 1 s into the run and >= 2 s before its end, with little free KV
(free < 10 % of the cache: where the KV wait matters) are in the 'tight' rows."""
import numpy as np

from sloserve_engine.bench.cluster import Setup
from sloserve_engine.contract.slo import SLO
from sloserve_engine.router.knobs import RouterKnobs
from sloserve_engine.sim import SimConfig, load_profile
from sloserve_engine.sim import cluster as cl
from sloserve_engine.sim import engine as se
from sloserve_engine.sim.workload import build_workload

WINDOW = 2.0
events: dict[int, list[tuple[float, int]]] = {}
snaps: list[tuple[int, float, object]] = []


def wrap(name: str) -> None:
    orig = getattr(se.SimEngine, name)

    def f(self, r):  # type: ignore[no-untyped-def]
        events.setdefault(id(self), []).append((self._now, r.blocks * self.config.block_size))
        return orig(self, r)

    setattr(se.SimEngine, name, f)


wrap("_release")
wrap("_preempt")
publish = cl._Cluster._publish


def recording_publish(self, e, now):  # type: ignore[no-untyped-def]
    publish(self, e, now)
    snaps.append((id(self.engines[e]), now, self.history[e][-1]))


cl._Cluster._publish = recording_publish
for mix in (None, 0.5):
    setup = Setup(slo_mix=mix)
    for rate in (72.0, 80.0, 88.0):
        rows_all, rows_tight = [], []
        for seg in (0, 1, 2):
            events.clear()
            snaps.clear()
            reqs = build_workload(setup.workload(rate, seg))
            cl.simulate_cluster(reqs, RouterKnobs(placement="slo-greedy", admission=True),
                                load_profile(setup.profile), SimConfig(kv_tokens=setup.kv_tokens),
                                SLO(ttft_ms=1000, tbt_ms=100), cl.ClusterConfig(engines=4, regions=2))
            end = reqs[-1].arrival
            ev = {k: (np.array([t for t, _ in v]), np.cumsum([n for _, n in v])) for k, v in events.items()}
            for eid, now, s in snaps:
                if now < 1.0 or now > end - WINDOW or eid not in ev:
                    continue
                ts, cum = ev[eid]
                lo = np.searchsorted(ts, now, side="right")
                hi = np.searchsorted(ts, now + WINDOW, side="right")
                actual = ((cum[hi - 1] if hi else 0) - (cum[lo - 1] if lo else 0)) / WINDOW
                row = (s.kv_drain_tokens_per_s, actual, s.kv_freed_tokens_per_s)
                rows_all.append(row)
                if s.kv_free_tokens < 0.1 * s.kv_total_tokens:
                    rows_tight.append(row)
        for name, rows in (("all", rows_all), ("tight", rows_tight)):
            a = np.array(rows)
            if not len(a):
                print(f"{'single' if mix is None else 'mixed 0.5'} {rate:g} {name}: no snapshots")
                continue
            pub, act, meas = a.T
            ok = act > 0
            print(f"{'single class' if mix is None else 'mixed 0.5':12} rate {rate:g} {name:5} snapshots {len(a):5}:"
                  f" median published {np.median(pub):8.0f}, actual next 2 s {np.median(act):7.0f},"
                  f" measured last 2 s {np.median(meas):7.0f} tokens/s;"
                  f" published/actual median {np.median(pub[ok] / act[ok]):5.2f}"
                  f" (p10 {np.percentile(pub[ok] / act[ok], 10):.2f}, p90 {np.percentile(pub[ok] / act[ok], 90):.2f}),"
                  f" measured/actual median {np.median(meas[ok] / act[ok]):4.2f}"
                  f" (p10 {np.percentile(meas[ok] / act[ok], 10):.2f}, p90 {np.percentile(meas[ok] / act[ok], 90):.2f})")
