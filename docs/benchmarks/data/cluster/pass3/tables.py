"""Numbers for docs/benchmarks.md's third-pass tables: mean (min-max) over segments.

Usage: python tables.py [DIR] > tables.txt   (DIR defaults to this file's folder)
"""

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

D = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent
RATES = [64, 68, 72, 76, 80, 84, 88]
HEURISTICS = ["random", "least-kv", "p2c", "dynamo", "slo-greedy"]
Run = dict[str, Any]


def runs(name: str, label: str | None = None) -> list[Run]:
    p = D / name
    rows: list[Run] = json.loads(p.read_text())["runs"] if p.exists() else []
    for r in rows:
        r["series"] = label or r["placement"]
    return rows


def by_point(rows: list[Run]) -> dict[tuple[str, int], list[Run]]:
    out: dict[tuple[str, int], list[Run]] = {}
    for r in rows:
        out.setdefault((r["series"], int(r["rate"])), []).append(r)
    for v in out.values():
        v.sort(key=lambda r: r["segment"])
    return out


def mean(rs: list[Run], key: str = "slo_attainment") -> float:
    return sum(r[key] for r in rs) / len(rs)


def pct(x: float) -> str:
    s = f"{100 * x:.1f}"
    return "100" if s == "100.0" else s


def table(
    a: dict[tuple[str, int], list[Run]], series: list[str], key: str, fmt: Callable[[float], str]
) -> None:
    rates = [x for x in RATES if any((s, x) in a for s in series)]
    print(f"| series \\ req/s | {' | '.join(map(str, rates))} |")
    print("|---" * (len(rates) + 1) + "|")
    for s in series:
        cells = []
        for x in rates:
            v = a.get((s, x))
            if not v:
                cells.append("–")
                continue
            lo, hi = min(r[key] for r in v), max(r[key] for r in v)
            cells.append(f"{fmt(mean(v, key))} ({fmt(lo)}–{fmt(hi)})")
        print(f"| {s} | {' | '.join(cells)} |")


def diffs(on: list[Run], off: list[Run]) -> str:
    return ", ".join(
        f"{100 * (p['slo_attainment'] - q['slo_attainment']):+.1f}"
        for p, q in zip(on, off, strict=True)
    )


rows = runs("conv_m1.json")
rows += runs("conv_kube_proxy.json", "kube-proxy")
rows += runs("conv_slo_greedy_no_admission.json", "slo-greedy no-admission")
a = by_point(rows)
series = ["kube-proxy", *HEURISTICS, "sloserve", "slo-greedy no-admission"]
print("attainment (%), mean (min-max)")
table(a, series, "slo_attainment", pct)
print("\np99 TTFT of served (s), mean (min-max)")
table(a, series, "ttft_p99", lambda m: f"{m:.2f}")

print("\nmax rate (mean >= 90 %, every segment drained in 30 s, p99 <= 10 s):")
for name in ("conv_m1.json", "conv_kube_proxy.json", "conv_slo_greedy_no_admission.json"):
    print(" ", name, json.loads((D / name).read_text())["max_rate"])
print(
    "strict == standard everywhere:",
    all(r["strict_attainment"] == r["slo_attainment"] for r in rows),
)
print("missed_tbt_only total:", sum(r["missed_tbt_only"] for r in rows))

print(
    "\nmisses at 76 req/s (sum over segments): total, room_somewhere, in_between, cluster_full, spread"
)
for s in ["kube-proxy", *HEURISTICS]:
    v = a[(s, 76)]
    mc = {
        k: sum(r["miss_causes"][k] for r in v)
        for k in ("room_somewhere", "in_between", "cluster_full")
    }
    print(
        f"| {s} | {sum(mc.values())} | {mc['room_somewhere']} | {mc['in_between']} |"
        f" {mc['cluster_full']} | {mean(v, 'queue_delay_spread_mean'):.2f} s |"
    )

print("\nshield refusals per 1k (mean over segments), rejections (sum over segments):")
for s in ["slo-greedy", "sloserve"]:
    for x in (72, 76, 80):
        v = a[(s, x)]
        print(
            f"  {s} @ {x}: {mean(v, 'refusals_per_1k'):.0f}, {sum(r['rejected_total'] for r in v)}"
        )

print("\nslo-greedy admission on - off, per segment (points):")
for x in (64, 68, 72, 76, 80):
    print(f"  {x}: {diffs(a[('slo-greedy', x)], a[('slo-greedy no-admission', x)])}")
print(
    "mean points: slo-greedy - kube-proxy, slo-greedy on - off, random - kube-proxy, bandit - slo-greedy"
)
for x in (64, 68, 72, 76, 80):
    g = mean(a[("slo-greedy", x)])
    print(
        f"  {x}: {100 * (g - mean(a[('kube-proxy', x)])):+.2f}, "
        f"{100 * (g - mean(a[('slo-greedy no-admission', x)])):+.2f}, "
        f"{100 * (mean(a[('random', x)]) - mean(a[('kube-proxy', x)])):+.2f}, "
        f"{100 * (mean(a[('sloserve', x)]) - g):+.2f}"
    )

print(
    "\nlargest gap between heuristics' means, and the range of one policy's min-max span (points):"
)
for x in (64, 68, 72, 76, 80):
    means = [mean(a[(s, x)]) for s in HEURISTICS]
    spans = [
        max(r["slo_attainment"] for r in a[(s, x)]) - min(r["slo_attainment"] for r in a[(s, x)])
        for s in HEURISTICS
    ]
    print(
        f"  {x}: gap {100 * (max(means) - min(means)):.1f}, spans {100 * min(spans):.1f}-{100 * max(spans):.1f}"
    )

for name, lab, ref in (
    ("conv_4r_500ms_m1.json", "slo-greedy 4r x 500ms", "slo-greedy"),
    ("conv_4r_500ms_least_kv_unshielded.json", "least-kv unshielded 4r x 500ms", "least-kv"),
):
    v4 = by_point(runs(name, lab))
    print(f"\n{lab} against one fresh {ref}:")
    for x in (72, 76):
        r4, r1 = v4[(lab, x)], a[(ref, x)]
        lo, hi = min(r["slo_attainment"] for r in r4), max(r["slo_attainment"] for r in r4)
        print(
            f"  {x}: {pct(mean(r4))} % ({pct(lo)}-{pct(hi)}) vs {pct(mean(r1))} %: {100 * (mean(r4) - mean(r1)):+.2f};"
            f" per segment {diffs(r4, r1)}; p99 {mean(r4, 'ttft_p99'):.2f} s;"
            f" refusals/1k {mean(r4, 'refusals_per_1k'):.0f}"
        )

print(
    "\nout of sample, run once (kube-proxy / slo-greedy margin 1): attainment % and p99 s per rate, max rate"
)
for w in ("sharegpt", "code1", "gamma1", "poisson1"):
    for arm in ("kube_proxy", "m1"):
        d = json.loads((D / f"heldout_{w}_{arm}.json").read_text())
        cells = [
            f"{r['rate']:g}: {pct(r['slo_attainment'])} %, {r['ttft_p99']:.2f} s"
            for r in sorted(d["runs"], key=lambda r: r["rate"])
        ]
        print(f"  {w} {arm}: {' / '.join(cells)}; max rate {list(d['max_rate'].values())}")

print(
    "\n6,000 requests, 4 routers x 500 ms, 76 req/s, margin 1: refusals/1k and attainment by window"
)
for r in json.loads((D / "bandit_m1_6000.json").read_text())["runs"]:
    w1k = " . ".join(f"{x:.0f}" for x in r["refusals_per_1k_windows"])
    wat = " . ".join(pct(x) for x in r["attainment_windows"])
    print(
        f"  {r['placement']}: {w1k} | {wat} % | {pct(r['slo_attainment'])} %, p99 {r['ttft_p99']:.2f} s,"
        f" refusals/1k {r['refusals_per_1k']:.0f}"
    )
