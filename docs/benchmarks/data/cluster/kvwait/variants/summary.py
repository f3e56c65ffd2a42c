# Usage: python summary.py mixed_off.json mixed_A.json ... > variants.txt (header lines added by hand)
import json, sys
import numpy as np
def summ(path):
    d = json.load(open(path))
    out = {}
    for r in d["runs"]:
        k = (r["label"], int(r["rate"]))
        out.setdefault(k, []).append(r)
    for (lab, rate), rs in sorted(out.items()):
        att = np.mean([r["slo_attainment"] for r in rs])
        p99 = np.mean([r["ttft_p99"] for r in rs])
        line = f"{lab:40} {rate:3d} all {100*att:5.1f} (min {100*min(r['slo_attainment'] for r in rs):.1f} max {100*max(r['slo_attainment'] for r in rs):.1f}) p99 {p99:5.2f}"
        if rs[0].get("per_class"):
            for c in ("interactive", "batch"):
                if c in rs[0]["per_class"]:
                    pc = [r["per_class"][c] for r in rs]
                    line += f" | {c[:5]} {100*np.mean([x['slo_attainment'] for x in pc]):5.1f} rej {np.mean([x['rejected_total'] for x in pc]):6.1f} p99 {np.mean([x['ttft_p99'] for x in pc]):5.2f}"
        print(line)
for p in sys.argv[1:]:
    print("==", p); summ(p)
