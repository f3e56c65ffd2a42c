import itertools, json, sys
real, sim = (json.load(open(p)) for p in sys.argv[1:3])  # bench router JSON, bench cluster JSON
def name(placement, shield):
    return placement if shield else placement + " unshielded"
r = {name(x["placement"], x["shield"]): (x["standard_mean"], x["standard_min"], x["standard_max"])
     for x in real["ranking"]}
s = {}
for run in sim["runs"]:
    s.setdefault(run["label"].removesuffix(" 2r/50ms"), []).append(run["slo_attainment"])
s = {k: (sum(v) / len(v), min(v), max(v)) for k, v in s.items() if k in r}
arms = sorted(r, key=lambda k: -r[k][0])
print(f"{'arm':22} {'real mean [min-max]':>24} {'rank':>4}   {'sim mean [min-max]':>24} {'rank':>4}")
srank = {k: i + 1 for i, k in enumerate(sorted(s, key=lambda k: -s[k][0]))}
for i, k in enumerate(arms):
    print(f"{k:22} {r[k][0]:.3f} [{r[k][1]:.3f}-{r[k][2]:.3f}] {i + 1:>4}   "
          f"{s[k][0]:.3f} [{s[k][1]:.3f}-{s[k][2]:.3f}] {srank[k]:>4}")
def tau(a, b):  # Kendall tau-b over the arms' mean attainments
    conc = disc = ta = tb = 0
    for x, y in itertools.combinations(list(a), 2):
        da, db = a[x][0] - a[y][0], b[x][0] - b[y][0]
        if da == 0 and db == 0: continue
        if da == 0: ta += 1
        elif db == 0: tb += 1
        elif da * db > 0: conc += 1
        else: disc += 1
    return (conc - disc) / (((conc + disc + ta) * (conc + disc + tb)) ** 0.5)
print(f"Kendall tau-b (means, {len(arms)} arms): {tau(r, s):+.2f}")
shielded = [k for k in arms if "unshielded" not in k]
print(f"Kendall tau-b (6 shielded placements): {tau({k: r[k] for k in shielded}, {k: s[k] for k in shielded}):+.2f}")
# Paired by slice: each arm's attainment minus the mean of all arms on the same slice (removes
# how hard the slice is, the bulk of the min-max above); mean [min-max] over the slices.
def paired(rows):  # rows: (arm, slice, attainment)
    by_slice = {}
    for arm, seg, a in rows:
        by_slice.setdefault(seg, []).append(a)
    dev = {}
    for arm, seg, a in rows:
        dev.setdefault(arm, []).append(a - sum(by_slice[seg]) / len(by_slice[seg]))
    return {k: (sum(v) / len(v), min(v), max(v)) for k, v in dev.items()}
pr = paired([(name(x["placement"], x["shield"]), x["segment"], x["standard"]) for x in real["runs"]])
ps = paired([(x["label"].removesuffix(" 2r/50ms"), x["segment"], x["slo_attainment"])
             for x in sim["runs"] if x["label"].removesuffix(" 2r/50ms") in r])
print("paired by slice (points vs the slice's mean over arms):")
for k in sorted(pr, key=lambda k: -pr[k][0]):
    print(f"{k:22} real {100 * pr[k][0]:+5.1f} [{100 * pr[k][1]:+5.1f} {100 * pr[k][2]:+5.1f}]   "
          f"sim {100 * ps[k][0]:+5.1f} [{100 * ps[k][1]:+5.1f} {100 * ps[k][2]:+5.1f}]")
print(f"Kendall tau-b (paired means, 7 arms): {tau(pr, ps):+.2f}")
