"""Clusters: our similarity levels against flat clusterings from scikit-learn, on the same
vectors (EfficientNet-Lite0, the planted-truth quality sets).

For each set: our five levels (similarity, clusters, items not grouped), NMI against the true
class at the level whose count is closest to the number of classes, and each peer at that same
count (k-means, Ward, spectral) or at its own count (HDBSCAN); planted duplicate groups inside
one strictest-level cluster (duplicates and clusters run on the same input, as ``analyze``
runs them); **stability**: the adjusted Rand index between the clusters of the whole set
(restricted to a random half) and those of the half analysed on its own, at every level, with
k-means at the same counts for reference (two seeded halves, the lower figure).
"""
from __future__ import annotations

import time

import numpy as np

SEEDS = (101, 102)


def our_levels(inp, with_duplicates=True):
    """(labels (5, N), clusters summary, seconds of the clusters analysis); the duplicate
    check first when asked."""
    from visual_curation.core.analyzers import LEVELS, REGISTRY

    if with_duplicates:
        REGISTRY["duplicates"].run(inp)
    t = time.time()
    res = REGISTRY["clusters"].run(inp)
    return (np.array([res.fields[f"vc_cluster_{l}"] for l in range(1, LEVELS + 1)]),
            res.summary, time.time() - t)


def half_input(inp, rows):
    from visual_curation.core.analyzers.base import AnalysisInput

    return AnalysisInput(ids=[inp.ids[i] for i in rows], vectors=inp.vectors[rows],
                         labels=[inp.labels[i] for i in rows],
                         filepaths=[inp.filepaths[i] for i in rows],
                         content_hashes=[inp.content_hashes[i] for i in rows])


def peers(X, count, seed=0):
    from sklearn.cluster import AgglomerativeClustering, KMeans, SpectralClustering

    return {
        "k-means (k-means++, 4 inits)": lambda: KMeans(count, n_init=4, random_state=seed)
        .fit_predict(X),
        "Ward": lambda: AgglomerativeClustering(count, linkage="ward").fit_predict(X),
        "spectral clustering (kNN affinity, 10 nn)": lambda: SpectralClustering(
            count, affinity="nearest_neighbors", n_neighbors=10, random_state=seed,
            assign_labels="cluster_qr").fit_predict(X),
    }


def one_set(work, source, quick):
    from sklearn.cluster import HDBSCAN, KMeans
    from sklearn.metrics import adjusted_rand_score as ari
    from sklearn.metrics import normalized_mutual_info_score as nmi

    import metrics
    import quality
    from visual_curation.core import knn as vck

    inp, names, truth = quality.load_input(
        quality.build(work, source, 2000 if quick else 5000, 0))
    y = metrics.true_classes(names, truth)
    n_classes = len({t for t in y if t != "__outlier__"})
    labels, summary, secs = our_levels(inp)
    counts = [len(np.unique(lab)) for lab in labels]
    best = min(range(len(counts)), key=lambda l: abs(counts[l] - n_classes))
    mean, comps = vck.pca(inp.vectors, 64, sample=20000, seed=0)
    X = vck.project(inp.vectors, mean, comps).astype(np.float64)
    rows = [("ours: similarity levels (vc_cluster_*)", counts[best],
             nmi(y, labels[best]), secs)]
    for name, fn in peers(X, counts[best]).items():
        t = time.time()
        lab = fn()
        rows.append((name, counts[best], nmi(y, lab), time.time() - t))
    t = time.time()
    lab = HDBSCAN(min_cluster_size=5).fit_predict(X)
    rows.append(("HDBSCAN (min_cluster_size 5; noise = one cluster each)",
                 len(set(lab[lab >= 0])) + int((lab < 0).sum()),
                 nmi(y, np.where(lab >= 0, lab, np.arange(len(lab)) + lab.max() + 1)),
                 time.time() - t))
    pairs = metrics.true_dup_pairs(names, truth)
    inside = np.mean([labels[-1][a] == labels[-1][b] for a, b in pairs]) if pairs else 1.0
    n = len(inp)
    ours_ari = np.ones(len(counts))
    km_ari = np.ones(len(counts))
    for s in SEEDS:
        half = np.sort(np.random.default_rng(s).choice(n, n // 2, replace=False))
        hl, _, _ = our_levels(half_input(inp, half))
        ours_ari = np.minimum(ours_ari, [ari(a[half], b) for a, b in zip(labels, hl)])
        for li, c in enumerate(counts[:3]):       # k-means at the loose levels' counts
            full = KMeans(c, n_init=4, random_state=0).fit_predict(X)
            part = KMeans(c, n_init=4, random_state=1).fit_predict(X[half])
            km_ari[li] = min(km_ari[li], ari(full[half], part))
    return dict(source=source, n=n, n_classes=n_classes, levels=summary["levels"],
                background=summary["background"], counts=counts, best=best, rows=rows,
                inside=inside, pairs=len(pairs), ari=ours_ari, km_ari=km_ari)


def table(r) -> str:
    out = [f"**{r['source']}** ({r['n']:,} images, {r['n_classes']} classes; background "
           f"similarity {r['background']:.3f})\n",
           "| level | z | similarity | clusters | items not grouped | stability: ARI whole vs "
           "half (ours) | k-means at that count |", "|---|---|---|---|---|---|---|"]
    for li, lv in enumerate(r["levels"]):
        km = f"{r['km_ari'][li]:.2f}" if li < 3 else "—"
        out.append(f"| {li + 1} ({lv['name']}) | {lv['z']:.2f} | {lv['similarity']:.3f} | "
                   f"{r['counts'][li]:,} | {lv['singletons']:,} | {r['ari'][li]:.2f} | {km} |")
    out += ["", f"Planted duplicate pairs inside one strictest-level cluster: "
                f"{r['inside']:.3f} ({r['pairs']} pairs).", "",
            f"| method | clusters | NMI (level {r['best'] + 1}'s count) | s |", "|---|---|---|---|"]
    out += [f"| {name} | {c:,} | {v:.3f} | {t:.1f} |" for name, c, v, t in r["rows"]]
    return "\n".join(out) + "\n"


def run(work, quick=False):
    rs = [one_set(work, s, quick) for s in ("fmnist", "stamps")]
    return ("Clustering methods", __doc__.split("\n\n")[0].replace("\n", " ") + " "
            + __doc__.split("\n\n")[1].replace("\n", " ") + "\n\n"
            + "\n".join(table(r) for r in rs))
