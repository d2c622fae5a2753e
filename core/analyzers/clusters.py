"""Visual clusters at 5 nested granularities (``vc_cluster_1`` loosest ... ``vc_cluster_5``
strictest).

One hierarchy, cut five times:

* vectors are projected on their top ``cluster_pca_dims`` principal components (denoising; the
  PCA is accumulated in blocks, so a memmap of any size works);
* up to ``cluster_max_direct`` items: Ward agglomerative clustering of the items, constrained to
  the kNN graph (``cluster_k`` neighbours, exact cosine on the full vectors - the input's
  shared kNN) - local merges only, no chaining (measured: single/average linkage chain into
  giant clusters, NMI < 0.1 on Fashion-MNIST; Ward 0.6);
* more items: the same hierarchy over a seeded random sample of ``cluster_max_direct`` items
  (its kNN graph computed in the PCA space, for speed);
  every other item takes the clusters of its nearest sampled item (Euclidean in the PCA space,
  assigned in blocks - memory O(block x sample), so 1M x 512 memmaps stream through).

Level ``l`` has ``min(N, max(cluster_levels[l], cluster_level_fractions[l] * N))`` clusters
(capped by the sample size on the large-dataset path): by default 4, 12, 36 clusters for the
three loose levels, whatever the dataset size, and 2 % / 10 % of N (at least 108 / 324) for the
two strict ones. Every cut applies a prefix of the same merge sequence, so each level-(k+1)
cluster lies inside exactly one level-k cluster (nesting by construction). Cluster ids are
0, 1, ... by decreasing size; every item has one (singletons included).

Summary: per level, the clusters largest first, each with ``id``, ``size``, up to
``cluster_representatives`` ids nearest the cluster's mean vector, and the 3 most common
labels (when labels are given).
"""
from __future__ import annotations

import numpy as np

from .. import knn as _knn
from .base import (AnalysisInput, AnalysisResult, Analyzer, FieldSpec, IncrementalInput,
                   jsonable, report)

LEVELS = 5


def level_counts(n, levels, fractions, cap=None):
    cap = n if cap is None else min(n, cap)
    out, prev = [], 1
    for fixed, frac in zip(levels, fractions):
        c = int(max(fixed, round(frac * n)))
        c = max(prev, min(c, cap))
        out.append(c)
        prev = c
    return out


def ward_merges(X, conn):
    """``children_`` of sklearn's Ward tree constrained to the (sparse, symmetric) graph."""
    import warnings

    from sklearn.cluster import AgglomerativeClustering

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "the number of connected components ..." (handled)
        ac = AgglomerativeClustering(n_clusters=1, linkage="ward", connectivity=conn,
                                     compute_full_tree=True).fit(np.asarray(X, np.float64))
    return ac.children_


def cut_levels(children, n, counts):
    """Labels (len(counts), n) after applying the first ``n - c`` merges, for each count ``c``
    (any order). Prefixes of one merge sequence, hence nested."""
    parent = np.arange(n)
    node_root = np.arange(2 * n - 1)

    def find(a):
        r = a
        while parent[r] != r:
            r = parent[r]
        while parent[a] != r:
            parent[a], a = r, parent[a]
        return r

    want = sorted(set(int(c) for c in counts), reverse=True)
    snaps = {}
    n_clusters = n
    wi = 0
    while wi < len(want) and want[wi] >= n_clusters:
        snaps[want[wi]] = np.arange(n)
        wi += 1
    for t, (a, b) in enumerate(children):
        if wi >= len(want):
            break
        ra, rb = find(node_root[a]), find(node_root[b])
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
            n_clusters -= 1
        node_root[n + t] = min(ra, rb)
        while wi < len(want) and n_clusters <= want[wi]:
            snaps[want[wi]] = np.array([find(i) for i in range(n)])
            wi += 1
    for c in want[wi:]:  # fewer merges than asked (cannot happen with a full tree)
        snaps[c] = np.array([find(i) for i in range(n)])
    return np.stack([snaps[int(c)] for c in counts])


def relabel_by_size(lab):
    """Map arbitrary labels to 0..K-1 by decreasing size (ties: smallest first index)."""
    u, first, inv, cnt = np.unique(lab, return_index=True, return_inverse=True, return_counts=True)
    order = np.lexsort((first, -cnt))
    rank = np.empty(len(u), np.int64)
    rank[order] = np.arange(len(u))
    return rank[inv]


def assign(X, C, block=4096):
    """Index of the nearest row of ``C`` (Euclidean) for each row of ``X``, in blocks."""
    cn = (C.astype(np.float32) ** 2).sum(axis=1)
    out = np.empty(len(X), np.int64)
    for b0 in range(0, len(X), block):
        x = np.asarray(X[b0:b0 + block], np.float32)
        out[b0:b0 + block] = np.argmin(cn[None, :] - 2.0 * (x @ C.T), axis=1)
    return out


def _graph(ind, n):
    from scipy.sparse import csr_matrix

    k = ind.shape[1]
    ok = ind.ravel() >= 0
    g = csr_matrix((np.ones(int(ok.sum())), (np.repeat(np.arange(n), k)[ok], ind.ravel()[ok])),
                   shape=(n, n))
    return ((g + g.T) > 0).astype(np.float64)


def cluster_summaries(inp, labels_by_level, max_clusters=1000, n_rep=6, block=8192):
    from scipy.sparse import csr_matrix

    n = len(inp)
    codes, names = inp.label_array()
    out = []
    for lab in labels_by_level:
        k = int(lab.max()) + 1 if n else 0
        M = csr_matrix((np.ones(n, np.float32), (lab, np.arange(n))), shape=(k, n))
        cen = np.zeros((k, inp.vectors.shape[1]), np.float32)
        for b0 in range(0, n, block):
            cen += M[:, b0:b0 + block] @ np.asarray(inp.vectors[b0:b0 + block], np.float32)
        cen /= np.maximum(np.linalg.norm(cen, axis=1, keepdims=True), 1e-12)
        cen = cen.astype(np.float32)
        sim = np.empty(n, np.float32)
        for b0 in range(0, n, block):
            v = np.asarray(inp.vectors[b0:b0 + block], np.float32)
            sim[b0:b0 + block] = np.einsum("ij,ij->i", v, cen[lab[b0:b0 + block]])
        order = np.lexsort((np.arange(n), -sim, lab))          # by cluster, nearest first
        starts = np.searchsorted(lab[order], np.arange(k))
        sizes = np.bincount(lab, minlength=k)
        tops = {}
        if codes is not None:
            ok = codes >= 0
            key = lab[ok].astype(np.int64) * (len(names) + 1) + codes[ok]
            u, cnt = np.unique(key, return_counts=True)
            cl, co = u // (len(names) + 1), u % (len(names) + 1)
            o = np.lexsort((co, -cnt, cl))
            for c_, l_, n_ in zip(cl[o], co[o], cnt[o]):
                lst = tops.setdefault(int(c_), [])
                if len(lst) < 3:
                    lst.append([names[int(l_)], int(n_)])
        clusters = []
        for c in range(min(k, max_clusters)):   # ids are by decreasing size already
            reps = order[starts[c]:starts[c] + min(n_rep, sizes[c])]
            clusters.append(dict(id=c, size=int(sizes[c]),
                                 representatives=[str(inp.ids[i]) for i in reps],
                                 top_labels=tops.get(c, [])))
        out.append(dict(n_clusters=k, truncated=max(0, k - max_clusters), clusters=clusters))
    return out


class ClustersAnalyzer(Analyzer):
    name = "clusters"
    field_specs = tuple(FieldSpec(f"vc_cluster_{k}", "int", "Visual Curation: cluster id at "
                                  f"granularity {k} (1 loosest, {LEVELS} strictest)")
                        for k in range(1, LEVELS + 1))
    defaults = dict(
        cluster_levels=(4, 12, 36, 108, 324),
        cluster_level_fractions=(0.0, 0.0, 0.0, 0.02, 0.10),
        cluster_k=10,
        cluster_pca_dims=64,
        cluster_max_direct=10000,
        cluster_summary_max=1000,
        cluster_representatives=6,
        cluster_seed=0,
    )
    param_help = dict(
        cluster_levels="minimum number of clusters per level, loosest to strictest",
        cluster_level_fractions="... or this fraction of the items, whichever is larger",
        cluster_k="kNN graph that constrains the merges",
        cluster_pca_dims="principal components the hierarchy is built on",
        cluster_max_direct="above this many items, build the hierarchy on a random sample "
                           "of this size and assign the others to their nearest sampled item",
        cluster_summary_max="clusters listed per level in the summary",
        cluster_representatives="ids listed per cluster (nearest the cluster mean)",
        cluster_seed="seed of the sample (large datasets)",
    )

    def run(self, inp: AnalysisInput, progress=None, **params) -> AnalysisResult:
        p = self.params(**params)
        n = len(inp)
        if n == 0:
            return AnalysisResult(fields={f: [] for f in self.fields}, summary=dict(params=p))
        if n == 1:
            return AnalysisResult(fields={f: [0] for f in self.fields}, summary=jsonable(dict(
                params=p, levels=cluster_summaries(inp, [np.zeros(1, np.int64)] * LEVELS))))
        report(progress, 0.0, "principal components")
        mean, comps = _knn.pca(inp.vectors, int(p["cluster_pca_dims"]), sample=20000,
                               seed=int(p["cluster_seed"]))
        X = _knn.project(inp.vectors, mean, comps)
        direct = n <= int(p["cluster_max_direct"])
        if direct:
            report(progress, 0.1, "nearest neighbours")
            ind, _ = inp.knn(int(p["cluster_k"]))      # shared, cached exact cosine kNN
            pts, item_to_pt = X, np.arange(n)
        else:
            report(progress, 0.1, "sample")
            m = int(p["cluster_max_direct"])
            rng = np.random.default_rng(int(p["cluster_seed"]))
            sample = np.sort(rng.choice(n, m, replace=False))
            pts = X[sample]
            ind, _ = _knn.knn(_knn.normalize(pts), int(p["cluster_k"]))  # in the PCA space
            item_to_pt = assign(X, pts)
            item_to_pt[sample] = np.arange(m)          # sampled items stay on their own point
        report(progress, 0.4, "hierarchy")
        npts = len(pts)
        counts = level_counts(n, p["cluster_levels"], p["cluster_level_fractions"], cap=npts)
        if npts >= 2:
            children = ward_merges(pts, _graph(ind, npts))
            pt_labels = cut_levels(children, npts, counts)
        else:
            pt_labels = np.zeros((LEVELS, npts), np.int64)
        labels = [relabel_by_size(pl[item_to_pt]) for pl in pt_labels]
        report(progress, 0.8, "cluster summaries")
        levels = cluster_summaries(inp, labels, int(p["cluster_summary_max"]),
                                   int(p["cluster_representatives"]))
        for lv, c in zip(levels, counts):
            lv["target"] = int(c)
        summary = dict(params=p, n=n, method="ward-knn" if direct else "sample-ward-knn+assign",
                       points=int(npts), levels=levels)
        report(progress, 1.0, "clusters done")
        return AnalysisResult(fields={f"vc_cluster_{l + 1}": labels[l].astype(int).tolist()
                                      for l in range(LEVELS)}, summary=jsonable(summary))

    def update(self, ctx: IncrementalInput, p: dict) -> None:
        """A new item takes, at every level, the clusters of its nearest earlier item (so
        nesting holds); one whose neighbours are all new gets the nearest by a direct query."""
        new, old, ind, inp = ctx.new, ctx.old, ctx.ind, ctx.inp
        is_old = old[np.maximum(ind, 0)] & (ind >= 0)
        first = np.where(is_old.any(axis=1), is_old.argmax(axis=1), -1)
        near = np.where(first >= 0, ind[np.arange(len(new)), np.maximum(first, 0)], -1)
        miss = np.flatnonzero(near < 0)
        if len(miss):
            old_rows = np.flatnonzero(old)
            j, _ = _knn.knn_query(np.asarray(inp.vectors[new[miss]], np.float32),
                                  inp.vectors[old_rows], 1)
            near[miss] = old_rows[j[:, 0]]
        stored = ctx.read(near, list(self.fields))
        sizes = ctx.summary.setdefault("clusters", {})
        for f in self.fields:
            ctx.put(f, new, stored[f])
            got = sizes.setdefault(f, {})
            for v in stored[f]:
                if v is not None:
                    got[str(v)] = got.get(str(v), 0) + 1
