"""The duplicate check against every everyday edit of the planted-set builder, kind by kind.

Sets are built with ``dup_edits="all"`` (every kind in ``tools/planted_sets.EDITS`` plus
random combinations), strengths drawn uniformly in [0, 1], on seeds no other bench or test
uses; EfficientNet-Lite0 vectors; the duplicates analyzer at its defaults, and once more as
:data:`VARIANTS` says (without registration) for comparison. Hard negatives: pairs of distinct pictures whose vectors
are as close as copies are (cosine >= :data:`HARD_COS`).

Usage: ``python bench/edits.py`` (or ``make bench ARGS="--only edits"``).
"""
from __future__ import annotations

import collections
from pathlib import Path

#: (source, n, seeds): Tux Paint has ~800 pictures, so its sets are small: three seeds
SETS = (("fmnist", 3000, (101, 102)), ("stamps", 5000, (101, 102, 103)))
HARD_COS = 0.9
#: the defaults, and the same without the step the comparison isolates
VARIANTS = (("default", {}), ("no registration", dict(dup_register_k=0)))


def _pairs_in_groups(g):
    by = collections.defaultdict(list)
    for i, x in enumerate(g):
        if x is not None:
            by[x].append(i)
    return {(a, b) for m in by.values() for k, a in enumerate(m) for b in m[k + 1:]}


def run_set(folder, **params):
    """Per-kind (found, total), predicted / true / false pairs, hard negatives (count, merged)."""
    import quality
    from visual_curation.core.analyzers import REGISTRY

    inp, names, truth = quality.load_input(folder)
    inp.planned = ("duplicates",)
    res = REGISTRY["duplicates"].run(inp, **params)
    g = res.fields["vc_dup_group"]
    row = {nm: i for i, nm in enumerate(names)}
    root = {}
    for nm in names:   # copies of one original form one true group
        t = truth[nm]
        root[row[nm]] = row[t["dup_of"]] if t.get("dup_of") else row[nm]
    kinds = collections.defaultdict(lambda: [0, 0])
    for nm, t in truth.items():
        if t.get("dup_of"):
            a, b = row[t["dup_of"]], row[nm]
            kinds[t["dup_kind"]][0] += int(g[a] is not None and g[a] == g[b])
            kinds[t["dup_kind"]][1] += 1
    pred = _pairs_in_groups(g)
    false = sum(root[a] != root[b] for a, b in pred)
    ind, sim = inp.knn(10)
    hard = {(min(a, int(b)), max(a, int(b))) for a in range(len(names))
            for b, s in zip(ind[a], sim[a]) if s >= HARD_COS and root[a] != root[int(b)]}
    merged = sum((a, b) in pred for a, b in hard)
    return dict(kinds=dict(kinds), pred=len(pred), false=false, hard=len(hard), merged=merged)


def seeded_sets(seed: int) -> tuple:
    """:data:`SETS` with seeds derived from ``seed`` (two Fashion-MNIST sets, three of the
    stamps): the quality section's edit-by-edit tables, on sets no earlier run saw."""
    return tuple((source, n, tuple(seed * 10 + k for k in range(1, len(seeds) + 1)))
                 for source, n, seeds in SETS)


def run(root: Path, sets=SETS, variants=VARIANTS) -> dict:
    """Per source of ``sets`` (source, n, seeds): the found / total copies per edit kind and
    the pair totals, for each of ``variants`` (label, duplicates parameters)."""
    import importlib

    importlib.import_module("quality")   # puts the repository on the path
    from tools.planted_sets import build_set

    out = {}
    for source, n, seeds in sets:
        agg = {label: collections.defaultdict(lambda: [0, 0]) for label, _ in variants}
        tot = {k: dict(pred=0, false=0, hard=0, merged=0) for k in agg}
        for seed in seeds:
            folder = build_set(root / f"edits-{source}-n{n}-s{seed}", source=source, n=n,
                               seed=seed, dup_edits="all", strength=(0.0, 1.0), dups=0.08)
            for label, params in variants:
                r = run_set(folder, **params)
                for k, (f, t) in r["kinds"].items():
                    agg[label][k][0] += f
                    agg[label][k][1] += t
                for k in tot[label]:
                    tot[label][k] += r[k]
        out[source] = dict(n=n, seeds=seeds, kinds={k: dict(v) for k, v in agg.items()},
                           totals=tot)
    return out


def table(res: dict) -> str:
    lines = []
    for source, r in res.items():
        labels = list(r["kinds"])
        d, td = r["kinds"]["default"], r["totals"]["default"]
        others = labels[1:]
        found = {o: sum(f for f, _ in r["kinds"][o].values()) for o in labels}
        total = sum(t for _, t in d.values())
        lines.append(f"### {source} (n={r['n']} per set, seeds {', '.join(map(str, r['seeds']))})\n")
        lines.append("| edit | copies | found (defaults) | recall >= 0.90 |"
                     + "".join(f" found ({o}) |" for o in others))
        lines.append("|---|---|---|---|" + "---|" * len(others))
        for k in sorted(d):
            f, t = d[k]
            lines.append(f"| {k} | {t} | {f} ({f / t:.2f}) | {'yes' if f / t >= 0.9 else 'no'} |"
                         + "".join(f" {r['kinds'][o][k][0]} ({r['kinds'][o][k][0] / t:.2f}) |"
                                   for o in others))
        fd = found["default"]
        lines.append(f"| **all** | {total} | **{fd} ({fd / total:.2f})** | "
                     f"{'yes' if fd / total >= 0.9 else 'no'} |"
                     + "".join(f" {found[o]} ({found[o] / total:.2f}) |" for o in others))

        def prec(t):
            return (t["pred"] - t["false"]) / max(t["pred"], 1)

        lines.append(f"\nPairs inside groups: {td['pred']} ({td['false']} false, precision "
                     f"{prec(td):.3f})"
                     + "".join(f"; {o}: {r['totals'][o]['pred']} ({r['totals'][o]['false']} "
                               f"false, precision {prec(r['totals'][o]):.3f})" for o in others)
                     + f". Hard negatives (distinct pictures with cosine >= {HARD_COS}): "
                     f"{td['hard']}, of which {td['merged']} put in one group (precision on "
                     f"them {1 - td['merged'] / max(td['hard'], 1):.3f}).\n")
    return ("Every edit kind of `tools/planted_sets.py` (`dup_edits=\"all\"`: each copy one "
            "kind, or 'combo' = 2-3 kinds at 3/4 strength), strengths uniform in [0, 1], "
            "3-8 % of each set copied; EfficientNet-Lite0 vectors; `duplicates` at its "
            "defaults. Recall of each kind is the share of planted copies grouped with their "
            "original.\n\n" + "\n".join(lines))


def main():
    import sys

    here = Path(__file__).resolve().parent
    sys.path[:0] = [str(here), str(here.parent)]
    print(table(run(Path("/tmp/vc-bench"))))


if __name__ == "__main__":
    main()
