"""Per-class markdown tables for docs/benchmarks.md, "After the KV wait": before (perclass/passing_*)
-> after (this folder's kv_*), means over segments. Usage: python md_tables.py > md_tables.txt"""

import json
from pathlib import Path

D = Path(__file__).resolve().parent
MIX = D.parent / "mixed" / "perclass"


def rows(path: Path) -> list[dict]:  # type: ignore[type-arg]
    return json.loads(path.read_text())["runs"]


def cell(rs: list[dict], f) -> float:  # type: ignore[no-untyped-def,type-arg]
    return sum(f(r) for r in rs) / len(rs)


for before, after, title in (
    ("passing_conv_mixed05_slo_greedy.json", "kv_conv_mixed05_slo_greedy.json", "in sample, azure-conv 0-2"),
    ("passing_oos_conv345_slo_greedy.json", "kv_oos_conv345_slo_greedy.json", "out of sample, azure-conv 3-5"),
    ("passing_oos_code3_slo_greedy.json", "kv_oos_code3_slo_greedy.json", "out of sample, azure-code 3"),
):
    b, a = rows(MIX / before), rows(D / after)
    print(f"\n{title}\n")
    print("| rate | admission | interactive | batch | all classes | rejected per slice: interactive / batch | shed | p99 TTFT served (s): interactive / batch / all |")
    print("|---|---|---|---|---|---|---|---|")
    for adm in (False, True):
        for x in sorted({r["rate"] for r in b}):
            pb = [r for r in b if r["rate"] == x and r["admission"] == adm]
            pa = [r for r in a if r["rate"] == x and r["admission"] == adm]

            def pc(rs, c, k):  # type: ignore[no-untyped-def]
                return cell(rs, lambda r: r["per_class"][c][k])

            def both(f, fmt):  # type: ignore[no-untyped-def]
                return f"{fmt(f(pb))} → {fmt(f(pa))}"

            pct = lambda v: f"{100 * v:.1f}%"  # noqa: E731
            one = lambda v: f"{v:.1f}"  # noqa: E731
            print(
                f"| {x:g} | {'on' if adm else 'off'} "
                f"| {both(lambda rs: pc(rs, 'interactive', 'slo_attainment'), pct)} "
                f"| {both(lambda rs: pc(rs, 'batch', 'slo_attainment'), pct)} "
                f"| {both(lambda rs: cell(rs, lambda r: r['slo_attainment']), pct)} "
                f"| {one(pc(pb, 'interactive', 'rejected_total'))} / {one(pc(pb, 'batch', 'rejected_total'))}"
                f" → {one(pc(pa, 'interactive', 'rejected_total'))} / {one(pc(pa, 'batch', 'rejected_total'))} "
                f"| {sum(r['rejected'].get('shed', 0) for r in pb)} → {sum(r['rejected'].get('shed', 0) for r in pa)} "
                f"| {pc(pb, 'interactive', 'ttft_p99'):.2f} / {pc(pb, 'batch', 'ttft_p99'):.2f} / {cell(pb, lambda r: r['ttft_p99']):.2f}"
                f" → {pc(pa, 'interactive', 'ttft_p99'):.2f} / {pc(pa, 'batch', 'ttft_p99'):.2f} / {cell(pa, lambda r: r['ttft_p99']):.2f} |"
            )
