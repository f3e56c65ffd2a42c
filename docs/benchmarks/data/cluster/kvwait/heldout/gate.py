"""The kvWaitReserved default gate on the single-class out-of-sample slices: pass3 (knob off)
against this folder (knob on), slo-greedy margin 1, one run each; kube-proxy from pass3 for its knee.

Usage: python gate.py > gate.txt
Gate (fixed before the runs): flip the default only if on all four workloads the max rate with the
knob on is >= off and the mean attainment over the rates is not lower by more than 1 point.
"""

import json
from pathlib import Path
from typing import Any

D = Path(__file__).resolve().parent
P3 = D.parents[1] / "pass3"


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    data["runs"].sort(key=lambda r: r["rate"])
    return data


def max_rate(d: dict[str, Any]) -> float:
    (v,) = d["max_rate"].values()
    return float(v)


def knee(d: dict[str, Any]) -> float:
    """kube-proxy's knee: its max rate under the bench's rule (the runs' lowest rate if none passes)."""
    v = max_rate(d)
    return v if v > 0 else float(d["runs"][0]["rate"])


print("| workload | rate | off: attainment / p99 served | on: attainment / p99 served | on − off (points) |")
print("|---|---|---|---|---|")
verdicts = []
for w in ("sharegpt", "code1", "gamma1", "poisson1"):
    off, on = load(P3 / f"heldout_{w}_m1.json"), load(D / f"heldout_{w}_m1_kvwait.json")
    kp = load(P3 / f"heldout_{w}_kube_proxy.json")
    for a, b in zip(off["runs"], on["runs"], strict=True):
        assert a["rate"] == b["rate"] and b["kv_wait_reserved"] and not a.get("kv_wait_reserved")
        print(
            f"| {w} | {a['rate']:g} | {100 * a['slo_attainment']:.1f} % / {a['ttft_p99']:.2f} s "
            f"| {100 * b['slo_attainment']:.1f} % / {b['ttft_p99']:.2f} s "
            f"| {100 * (b['slo_attainment'] - a['slo_attainment']):+.1f} |"
        )
    m_off = sum(r["slo_attainment"] for r in off["runs"]) / len(off["runs"])
    m_on = sum(r["slo_attainment"] for r in on["runs"]) / len(on["runs"])
    k = knee(kp)
    p99 = {
        name: next(r["ttft_p99"] for r in d["runs"] if r["rate"] == k)
        for name, d in (("kube-proxy", kp), ("off", off), ("on", on))
    }
    ok = max_rate(on) >= max_rate(off) and 100 * (m_on - m_off) >= -1.0
    verdicts.append(ok)
    print(
        f"| {w} | summary | max rate {max_rate(off):g}, mean {100 * m_off:.2f} % "
        f"| max rate {max_rate(on):g}, mean {100 * m_on:.2f} % | {100 * (m_on - m_off):+.2f}; "
        f"p99 served at kube-proxy's knee ({k:g} req/s; kube-proxy {p99['kube-proxy']:.2f} s): "
        f"{p99['off']:.2f} → {p99['on']:.2f} s; gate {'passed' if ok else 'FAILED'} |"
    )
print(f"\ngate on all four: {'passed: flip the default' if all(verdicts) else 'failed: default stays off'}")
