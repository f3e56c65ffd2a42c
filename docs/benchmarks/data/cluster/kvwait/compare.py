"""Before/after kvWaitReserved: the numbers in docs/benchmarks.md, "After the KV wait".

Usage: python compare.py > compare.txt   (run from anywhere; reads this folder, ../pass3 and
../mixed/perclass). Before = pass3 (single class) and perclass/passing_* (mixed classes), both
on the code with kvWaitReserved off (identical predictions); after = this folder's JSON.
Means over segments with (min-max); per-segment paired differences where they matter.
"""

import json
from pathlib import Path
from typing import Any

D = Path(__file__).resolve().parent
P3 = D.parent / "pass3"
MIX = D.parent / "mixed" / "perclass"
Run = dict[str, Any]


def load(path: Path) -> list[Run]:
    return json.loads(path.read_text())["runs"]


def pick(rows: list[Run], placement: str, rate: float, **kw: Any) -> list[Run]:
    out = [
        r
        for r in rows
        if r["placement"] == placement
        and r["rate"] == rate
        and all(r[k] == v for k, v in kw.items())
    ]
    return sorted(out, key=lambda r: r["segment"])


def m(rs: list[Run], key: str = "slo_attainment", scale: float = 100.0) -> str:
    v = [scale * r[key] for r in rs]
    return f"{sum(v) / len(v):.1f} ({min(v):.1f}-{max(v):.1f})"


def mean(rs: list[Run], key: str = "slo_attainment") -> float:
    return sum(r[key] for r in rs) / len(rs)


def paired(a: list[Run], b: list[Run], key: str = "slo_attainment") -> str:
    return ", ".join(f"{100 * (y[key] - x[key]):+.1f}" for x, y in zip(a, b, strict=True))


print("== single class, azure-conv segments 0-2 (tuning workload) ==")
before, after = load(P3 / "conv_m1.json"), load(D / "conv_m1.json")
print("attainment %, mean (min-max) over segments: before -> after; paired per segment (points)")
for p in ("random", "least-kv", "p2c", "dynamo", "slo-greedy", "sloserve"):
    for x in (64, 68, 72, 76, 80):
        b, a = pick(before, p, x), pick(after, p, x)
        print(
            f"  {p:10} {x}: {m(b)} -> {m(a)}; paired {paired(b, a)};"
            f" p99 served {mean(b, 'ttft_p99'):.2f} -> {mean(a, 'ttft_p99'):.2f} s;"
            f" rejected/slice {mean(b, 'rejected_total'):.1f} -> {mean(a, 'rejected_total'):.1f};"
            f" refusals/1k {mean(b, 'refusals_per_1k'):.0f} -> {mean(a, 'refusals_per_1k'):.0f}"
        )
print("max rate (>= 90 %): before", json.loads((P3 / "conv_m1.json").read_text())["max_rate"])
print("                    after ", json.loads((D / "conv_m1.json").read_text())["max_rate"])
kp = load(P3 / "conv_kube_proxy.json")
print("kube-proxy (reads no prediction, unchanged) max rate:",
      json.loads((P3 / "conv_kube_proxy.json").read_text())["max_rate"])
k72 = pick(kp, "random", 72)
b72, a72 = pick(before, "slo-greedy", 72), pick(after, "slo-greedy", 72)
kq = mean(k72, "ttft_p99")


def seg_p99(rs: list[Run]) -> str:
    return " / ".join(f"{r['ttft_p99']:.2f}" for r in rs)



print(
    f"p99 TTFT of served at kube-proxy's knee (72): kube-proxy {kq:.2f} s"
    f" ({seg_p99(k72)});"
    f" slo-greedy before {mean(b72, 'ttft_p99'):.2f} s ({seg_p99(b72)})"
    f" = {kq / mean(b72, 'ttft_p99'):.2f}x; after {mean(a72, 'ttft_p99'):.2f} s"
    f" ({seg_p99(a72)}) = {kq / mean(a72, 'ttft_p99'):.2f}x"
)
bn, an = load(P3 / "conv_slo_greedy_no_admission.json"), load(D / "conv_slo_greedy_no_admission.json")
print("slo-greedy admission off (ranking only): before -> after")
for x in (64, 68, 72, 76, 80, 84, 88):
    b, a = pick(bn, "slo-greedy", x), pick(an, "slo-greedy", x)
    print(f"  {x}: {m(b)} -> {m(a)}; p99 {mean(b, 'ttft_p99'):.2f} -> {mean(a, 'ttft_p99'):.2f} s")
print("admission on - off (after, mean points):",
      ", ".join(f"{x}: {100 * (mean(pick(after, 'slo-greedy', x)) - mean(pick(an, 'slo-greedy', x))):+.2f}"
                for x in (64, 68, 72, 76, 80)))
for name, p in (("conv_4r_500ms_m1.json", "slo-greedy"),
                ("conv_4r_500ms_least_kv_unshielded.json", "least-kv")):
    b4, a4 = load(P3 / name), load(D / name)
    for x in (72, 76):
        b, a = pick(b4, p, x), pick(a4, p, x)
        f1 = pick(after, p, x)
        print(
            f"{name} {x}: {m(b)} -> {m(a)}; after vs one fresh router (after): "
            f"{100 * (mean(a) - mean(f1)):+.2f} (per segment {paired(f1, a)});"
            f" refusals/1k {mean(b, 'refusals_per_1k'):.0f} -> {mean(a, 'refusals_per_1k'):.0f}"
        )


def classes(path: Path, label: str) -> None:
    print(f"\n== {label}: {path.name} ==")
    rows = load(path)
    rates = sorted({r["rate"] for r in rows})
    for adm in (False, True):
        for x in rates:
            rs = pick(rows, "slo-greedy", x, admission=adm)
            line = f"  {x:g} {'on ' if adm else 'off'}: all {m(rs)}"
            for c in ("interactive", "batch"):
                pc = [r["per_class"][c] for r in rs]
                att = sum(p["slo_attainment"] for p in pc) / len(pc)
                rej = sum(p["rejected_total"] for p in pc) / len(pc)
                p99 = sum(p["ttft_p99"] for p in pc) / len(pc)
                line += f" | {c} {100 * att:.1f} % rej/slice {rej:.1f} p99 {p99:.2f}"
            shed = sum(r["rejected"].get("shed", 0) for r in rs)
            line += f" | shed {shed} | p99 all {mean(rs, 'ttft_p99'):.2f}"
            print(line)
    print("  max rate:", json.loads(path.read_text())["max_rate"])


for before_name, after_name, label in (
    ("passing_conv_mixed05_slo_greedy.json", "kv_conv_mixed05_slo_greedy.json", "in sample, azure-conv 0-2"),
    ("passing_oos_conv345_slo_greedy.json", "kv_oos_conv345_slo_greedy.json", "out of sample, azure-conv 3-5"),
    ("passing_oos_code3_slo_greedy.json", "kv_oos_code3_slo_greedy.json", "out of sample, azure-code 3"),
):
    classes(MIX / before_name, "before " + label)
    if (D / after_name).exists():
        classes(D / after_name, "after " + label)
