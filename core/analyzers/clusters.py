"""Visual clusters at 5 nested granularities (``vc_cluster_1`` loosest ... ``vc_cluster_5``
strictest), each level a **similarity**, calibrated on the dataset.

**The similarity.** Vectors are centred on the dataset's mean and L2-normalised: what all items
share (a model's common direction, a dataset's common style) does not count, so similarities
spread over the whole range the same way for any model. Similarity is the cosine of centred
vectors.

**The scale.** Each run measures the dataset's *background*: ``b``, the median similarity of
``cluster_background_pairs`` seeded random pairs of items. A level is a place ``z`` on the way
from that typical pair (``z = 0``) to identical (``z = 1``); its similarity is
``s = b + z (1 - b)``. The five levels are evenly spaced in ``z`` from ``cluster_similarity[0]``
(loosest: broad groups) to ``cluster_similarity[1]`` (strictest: near-identical), i.e. even
steps in similarity. The strictest level is at least the similarity that 3 in 4 items do not
reach with their nearest neighbour (``nearest`` in the summary), so most items are alone there
even with a model that puts a whole class close together (the steps then widen evenly). A random half of a
dataset has the background of the whole, so a level means the same on any size.

**The groups.** Average linkage (UPGMA): two groups merge when their members are on average at
least ``s`` similar, so a level-``s`` cluster is a set of items whose every merge was at least
``s`` on average, and an item that is not that similar to any group is a cluster of its own
("not grouped"). One tree cut at five heights: the levels are **nested**. Average linkage has no
chaining (each merge averages over every pair) and, being an average, it is estimated without
bias from a sample - which makes it stable when the dataset grows or is split.

* Up to ``cluster_max_direct`` items: the exact tree of all items (``scipy``; the pairwise
  distances of N items, ~4 N² bytes).
* More items: the tree of a seeded random sample of that size; every other item is tied to a
  sampled item through the kNN graph (its most similar sampled neighbour, else the one its
  most similar neighbour was tied to) and takes that item's clusters from the loosest level
  down, while its average similarity to the cluster's sampled members (its dot product with
  their mean vector) reaches the level's similarity or that of the cluster's least typical
  sampled member (members of a cluster average around its merge level); from the first level
  where it does not, it is not grouped (nesting holds).
* Near-identical items stay together at every level: kNN pairs at least as similar as the
  strictest level, and the duplicate groups of the same run (``duplicates`` runs first), are
  merged into one cluster at every level (each merge at every level, so nesting holds).

Cluster ids are 0, 1, ... by decreasing size (single items last); every item has one.

Summary: ``background``, and per level its ``similarity``, ``z``, ``name``, ``singletons``
(items not grouped) and ``first_single`` (the first id of a single-item cluster), and the
clusters largest first, each with ``id``, ``size``, up to ``cluster_representatives`` ids nearest
the cluster's mean vector, and the 3 most common labels (when labels are given). ``state``
keeps the centre, so an incremental run measures similarity the same way.
"""
from __future__ import annotations

import numpy as np

from .. import knn as _knn
from .base import (AnalysisInput, AnalysisResult, Analyzer, FieldSpec, IncrementalInput,
                   decode_array, encode_array, jsonable, report)

LEVELS = 5
#: what each level means, loosest first (shown with the level's similarity)
LEVEL_NAMES = ("broad groups", "related", "similar", "very similar", "near-identical")
BLOCK = 65536


def sample_rows(n, sample, seed=0):
    """Every row index, or a sorted seeded sample of ``sample`` of them."""
    return (np.arange(n) if n <= sample
            else np.sort(np.random.default_rng(seed).choice(n, sample, replace=False)))


def centre_of(vectors, sample=20000, seed=0):
    """The mean vector (of a seeded sample of ``sample`` rows on large inputs)."""
    rows = sample_rows(len(vectors), sample, seed)
    return np.asarray(vectors[rows], np.float64).mean(axis=0).astype(np.float32)


def centred(vectors, centre):
    """Rows centred on ``centre`` and L2-normalised (float32)."""
    return _knn.normalize(np.asarray(vectors, np.float32) - centre)


def pair_similarity(vectors, centre, a, b):
    """Similarity (centred cosine) of the unit row pairs ``(a[i], b[i])``, in blocks."""
    out = np.empty(len(a), np.float32)
    c = np.asarray(centre, np.float32)
    for b0 in range(0, len(a), BLOCK):
        ra, rb = a[b0:b0 + BLOCK], b[b0:b0 + BLOCK]
        rows = np.unique(np.concatenate([ra, rb]))
        V = np.asarray(vectors[rows], np.float32)
        ia, ib = np.searchsorted(rows, ra), np.searchsorted(rows, rb)
        d = V @ c
        out[b0:b0 + BLOCK] = centred_cosine(np.einsum("ij,ij->i", V[ia], V[ib]), d[ia], d[ib],
                                            c)
    return out


def background_similarity(vectors, centre, pairs: int = 20000, seed: int = 0) -> float:
    """Median similarity of ``pairs`` seeded random pairs of distinct rows."""
    n = len(vectors)
    if n < 2:
        return 0.0
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, n, pairs), rng.integers(0, n, pairs)
    ok = a != b
    return float(np.median(pair_similarity(vectors, centre, a[ok], b[ok])))


def level_similarities(background: float, loose: float, strict: float, levels: int = LEVELS,
                       floor: float | None = None):
    """``(similarity per level, z per level)``: even steps from ``loose`` to ``strict`` on the
    way from the background (z = 0) to identical (z = 1); the strictest level is at least
    ``floor`` (the steps widen evenly)."""
    lo = background + float(loose) * (1.0 - background)
    hi = background + float(strict) * (1.0 - background)
    if floor is not None:
        hi = min(max(hi, float(floor)), 1.0)
    s = np.linspace(lo, hi, levels)
    return s, (s - background) / max(1.0 - background, 1e-12)


def nearest_similarity(inp, centre, quantile=0.75, sample=20000, seed=0):
    """The ``quantile`` of the similarity of an item to its nearest neighbour (seeded sample
    of items)."""
    ind, sim = inp.knn(1)
    rows = sample_rows(len(inp), sample, seed)
    ok = rows[ind[rows, 0] >= 0]
    if not len(ok):
        return None
    cs = centred_cosine(sim[ok, 0], centre_dots(inp.vectors, centre, ok),
                        centre_dots(inp.vectors, centre, ind[ok, 0]), centre)
    return float(np.quantile(cs, quantile))


def average_tree(U, block=1024):
    """scipy's average-linkage tree of the unit rows ``U`` (cosine distance)."""
    from scipy.cluster.hierarchy import linkage

    n = len(U)
    d = np.empty(n * (n - 1) // 2, np.float64)
    pos = 0
    for i0 in range(0, n - 1, block):                 # the condensed matrix, row blocks
        S = U[i0:i0 + block] @ U.T
        for r in range(S.shape[0]):
            i = i0 + r
            if i >= n - 1:
                break
            d[pos:pos + n - i - 1] = 1.0 - S[r, i + 1:]
            pos += n - i - 1
    np.clip(d, 0.0, 2.0, out=d)
    return linkage(d, method="average")


def cut_tree(Z, thresholds):
    """Labels ``(len(thresholds), n)``: the clusters whose merges are all at least each
    similarity (nested for increasing thresholds)."""
    from scipy.cluster.hierarchy import fcluster

    return np.stack([fcluster(Z, 1.0 - s, criterion="distance") - 1 for s in thresholds])


def keep_together(labels, pairs, prefer=None):
    """Each level's labels where every group of items linked by ``pairs`` takes, at every
    level, the clusters of one of its members (a ``prefer``-red one if any, else the first):
    groups are moved whole, clusters are never merged (no chaining), nesting holds."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = labels.shape[1]
    if not len(pairs):
        return labels
    g = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    k, comp = connected_components(g, directed=False)
    pref = np.zeros(n, bool) if prefer is None else prefer
    order = np.lexsort((np.arange(n), ~pref, comp))
    anchor = order[np.searchsorted(comp[order], np.arange(k))][comp]
    out = labels.copy()
    moved = anchor != np.arange(n)
    out[:, moved] = labels[:, anchor[moved]]
    return out


def centre_dots(vectors, centre, rows=None):
    """``v . centre`` of every row (or of ``rows``), in blocks."""
    c = np.asarray(centre, np.float32)
    if rows is not None:
        return np.asarray(vectors[np.asarray(rows)], np.float32) @ c
    return np.concatenate([np.asarray(vectors[b0:b0 + BLOCK], np.float32) @ c
                           for b0 in range(0, len(vectors), BLOCK)])


def centred_cosine(raw, dot_a, dot_b, centre):
    """Similarity (centred cosine) of unit-vector pairs from their cosine ``raw`` and their
    dot products with the centre: ``(a-m).(b-m) / |a-m| |b-m|``, no vectors read."""
    mm = float(np.dot(centre, centre))
    num = raw - dot_a - dot_b + mm
    den = np.sqrt(np.maximum(1 - 2 * dot_a + mm, 1e-12) * np.maximum(1 - 2 * dot_b + mm, 1e-12))
    return num / den


def near_identical_pairs(inp, k, centre, strict, dup_roots=None):
    """Pairs to keep together: kNN pairs at least ``strict`` similar (``k`` > 0), and the
    duplicate groups (``dup_roots``: each item's group root)."""
    pairs = [np.zeros((0, 2), np.int64)]
    if k > 0:
        ind, sim = inp.knn(k)
        dots = centre_dots(inp.vectors, centre)
        for b0 in range(0, len(ind), BLOCK):           # row blocks: no N x k temporaries
            I, S = ind[b0:b0 + BLOCK], sim[b0:b0 + BLOCK]
            cs = centred_cosine(S, dots[b0:b0 + len(I), None], dots[np.maximum(I, 0)], centre)
            r, c = np.nonzero((I >= 0) & (cs >= strict))
            pairs.append(np.stack([r + b0, I[r, c]], 1).astype(np.int64))
    if dup_roots is not None and len(dup_roots) == len(inp):
        members = np.flatnonzero(dup_roots != np.arange(len(inp)))
        pairs.append(np.stack([members, dup_roots[members]], 1))
    return np.concatenate(pairs).astype(np.int64)


def nearest_sampled(ind, sample, n, rounds=30, block=BLOCK * 4):
    """A sampled item for every item, through the kNN graph ``ind`` (rows by decreasing
    similarity): its most similar sampled neighbour, else the one its most similar neighbour
    with one got (repeated); ``-1`` where none is reached. Each round reads the previous
    round's answers only, in blocks of rows (memory: a block, not N x k)."""
    pt = np.full(n, -1, np.int64)
    pt[sample] = np.arange(len(sample))
    for _ in range(rounds):
        todo = np.flatnonzero(pt < 0)
        if not len(todo):
            break
        new = np.full(len(todo), -1, np.int64)
        for b0 in range(0, len(todo), block):
            nb = np.asarray(ind[todo[b0:b0 + block]])
            got = np.where(nb >= 0, pt[np.maximum(nb, 0)], -1)
            has = got >= 0
            first = has.argmax(axis=1)
            new[b0:b0 + len(nb)] = np.where(has.any(axis=1),
                                            got[np.arange(len(nb)), first], -1)
        if not (new >= 0).any():
            break
        pt[todo] = new                                 # -1 where still unreached
    return pt


def descend(vectors, centre, Us, pt_labels, thresholds, item_to_pt):
    """Labels of every item on the sampled path (see the module doc), ``-1`` where not
    grouped: an item takes, from the loosest level down, the clusters of its sampled item
    (``item_to_pt``; ``-1``: the cluster it is most similar to on average) while its average
    similarity to the cluster's sampled members - the dot product with their mean vector -
    reaches the level or that of the cluster's least typical sampled member."""
    from scipy.sparse import csr_matrix

    cents, bars = [], []
    for li, lab in enumerate(pt_labels):
        k = int(lab.max()) + 1
        M = csr_matrix((np.ones(len(lab), np.float32), (lab, np.arange(len(lab)))),
                       shape=(k, len(lab)))
        cents.append(np.asarray((M @ Us) / np.bincount(lab, minlength=k)[:, None], np.float32))
        # members of a cluster average around its merge level: an item as typical of it as
        # its least typical sampled member joins it even below the level
        typ = np.einsum("ij,ij->i", Us, cents[-1][lab])
        least = np.full(k, np.inf, np.float32)
        np.minimum.at(least, lab, typ)
        bars.append(np.minimum(least, thresholds[li]).astype(np.float32))
    member = np.empty(len(cents[0]), np.int64)         # a sampled item of each loosest cluster
    member[pt_labels[0]] = np.arange(len(pt_labels[0]))
    out = np.full((len(thresholds), len(vectors)), -1, np.int64)
    for b0 in range(0, len(vectors), BLOCK):
        U = centred(vectors[b0:b0 + BLOCK], centre)
        pt = item_to_pt[b0:b0 + BLOCK]
        lost = pt < 0                                  # no sampled item reached: a member of
        if lost.any():                                 # the loosest cluster it is most like
            pt = pt.copy()
            pt[lost] = member[(U[lost] @ cents[0].T).argmax(axis=1)]
        ok = np.ones(len(U), bool)
        for li, lab in enumerate(pt_labels):
            c = lab[pt]
            ok &= np.einsum("ij,ij->i", U, cents[li][c]) >= bars[li][c]
            out[li, b0:b0 + len(U)] = np.where(ok, c, -1)
    return out


def relabel_by_size(lab):
    """Map arbitrary labels to 0..K-1 by decreasing size (ties: smallest first index)."""
    u, first, inv, cnt = np.unique(lab, return_index=True, return_inverse=True, return_counts=True)
    order = np.lexsort((first, -cnt))
    rank = np.empty(len(u), np.int64)
    rank[order] = np.arange(len(u))
    return rank[inv]


def cluster_summaries(inp, labels_by_level, max_clusters=1000, n_rep=6, block=8192):
    """Per level: the ``max_clusters`` largest clusters (ids are by decreasing size) with
    their size, representatives (nearest the cluster's mean vector) and top labels; memory
    and time grow with the listed clusters, not with all (a strict level of a million items
    has about a million clusters)."""
    from scipy.sparse import csr_matrix

    n = len(inp)
    codes, names = inp.label_array()
    out = []
    for lab in labels_by_level:
        k = int(lab.max()) + 1 if n else 0
        kk = min(k, max_clusters)
        sizes = np.bincount(lab, minlength=k)
        rows = np.flatnonzero(lab < kk)                 # the items of the listed clusters
        cen = np.zeros((kk, inp.vectors.shape[1]), np.float32)
        for b0 in range(0, len(rows), block):
            r = rows[b0:b0 + block]
            M = csr_matrix((np.ones(len(r), np.float32), (lab[r], np.arange(len(r)))),
                           shape=(kk, len(r)))
            cen += M @ np.asarray(inp.vectors[r], np.float32)
        cen /= np.maximum(np.linalg.norm(cen, axis=1, keepdims=True), 1e-12)
        sim = np.empty(len(rows), np.float32)
        for b0 in range(0, len(rows), block):
            r = rows[b0:b0 + block]
            sim[b0:b0 + block] = np.einsum("ij,ij->i", np.asarray(inp.vectors[r], np.float32),
                                           cen[lab[r]])
        order = rows[np.lexsort((rows, -sim, lab[rows]))]  # by cluster, nearest first
        starts = np.searchsorted(lab[order], np.arange(kk))
        tops = {}
        if codes is not None:
            ok = rows[codes[rows] >= 0]
            key = lab[ok].astype(np.int64) * (len(names) + 1) + codes[ok]
            u, cnt = np.unique(key, return_counts=True)
            cl, co = u // (len(names) + 1), u % (len(names) + 1)
            o = np.lexsort((co, -cnt, cl))
            for c_, l_, n_ in zip(cl[o], co[o], cnt[o]):
                lst = tops.setdefault(int(c_), [])
                if len(lst) < 3:
                    lst.append([names[int(l_)], int(n_)])
        clusters = []
        for c in range(kk):
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
        cluster_similarity=(0.1, 0.85),
        cluster_background_pairs=20000,
        cluster_k=10,
        cluster_max_direct=10000,
        cluster_summary_max=1000,
        cluster_representatives=6,
        cluster_seed=0,
    )
    param_help = dict(
        cluster_similarity="loosest and strictest level, as a place between the dataset's "
                           "typical pair (0) and identical (1); the levels are evenly spaced",
        cluster_background_pairs="random pairs whose median cosine is the dataset's typical pair",
        cluster_k="neighbours checked for near-identical pairs",
        cluster_max_direct="above this many items, build the hierarchy on a random sample "
                           "of this size and take the others down its tree",
        cluster_summary_max="clusters listed per level in the summary",
        cluster_representatives="ids listed per cluster (nearest the cluster mean)",
        cluster_seed="seed of the background pairs and of the sample (large datasets)",
    )

    def run(self, inp: AnalysisInput, progress=None, **params) -> AnalysisResult:
        p = self.params(**params)
        n = len(inp)
        seed = int(p["cluster_seed"])
        if n == 0:
            return AnalysisResult(fields={f: [] for f in self.fields}, summary=dict(params=p))
        centre = centre_of(inp.vectors, seed=seed)
        bg = background_similarity(inp.vectors, centre, int(p["cluster_background_pairs"]), seed)
        lo, hi = p["cluster_similarity"]
        # "most items alone at the strictest level": it is at least the similarity that 3 in 4
        # items do not reach with their nearest neighbour (models that put a whole class
        # close together)
        nn = nearest_similarity(inp, centre, seed=seed) if n > 1 else None
        thresholds, zs = level_similarities(bg, lo, hi, floor=nn)
        if n == 1:
            labels = np.zeros((LEVELS, 1), np.int64)
            method, npts = "single item", 1
        else:
            direct = n <= int(p["cluster_max_direct"])
            sample = sample_rows(n, int(p["cluster_max_direct"]), seed)
            npts = len(sample)
            report(progress, 0.1, "hierarchy")
            Us = centred(inp.vectors[sample], centre)
            pt_labels = cut_tree(average_tree(Us), thresholds)
            if direct:
                labels, method = pt_labels, "average-linkage"
            else:
                report(progress, 0.4, "the other items down the tree")
                ind, _ = inp.knn(max(int(p["cluster_k"]), AnalysisInput.MIN_K))
                labels = descend(inp.vectors, centre, Us, pt_labels, thresholds,
                                 nearest_sampled(ind, sample, n))
                labels[:, sample] = pt_labels
                alone = labels < 0                     # not grouped: an id of its own
                labels[alone] = npts + np.nonzero(alone)[1]
                method = "sample-average-linkage+descend"
            report(progress, 0.6, "near-identical items")
            # the exact tree groups near-identical items itself; items taken down a sampled
            # tree one by one are kept with their near-identical neighbours
            pairs = near_identical_pairs(inp, 0 if direct else int(p["cluster_k"]), centre,
                                         thresholds[-1], inp.shared.dup_roots)
            prefer = np.zeros(n, bool)
            prefer[sample] = True
            labels = keep_together(labels, pairs, prefer)
        labels = [relabel_by_size(lab) for lab in labels]
        report(progress, 0.8, "cluster summaries")
        levels = cluster_summaries(inp, labels, int(p["cluster_summary_max"]),
                                   int(p["cluster_representatives"]))
        for lv, lab, s, z, name in zip(levels, labels, thresholds, zs, LEVEL_NAMES):
            sizes = np.bincount(lab)
            single = np.flatnonzero(sizes == 1)
            lv.update(similarity=round(float(s), 4), z=round(float(z), 4), name=name,
                      singletons=int(len(single)),
                      first_single=int(single[0]) if len(single) else int(len(sizes)),
                      next_id=int(len(sizes)))
        summary = dict(params=p, n=n, method=method, points=int(npts),
                       background=round(bg, 4),
                       nearest=None if nn is None else round(nn, 4), levels=levels,
                       state=dict(centre=encode_array(centre)))
        report(progress, 1.0, "clusters done")
        return AnalysisResult(fields={f"vc_cluster_{l + 1}": labels[l].astype(np.int32)
                                      for l in range(LEVELS)}, summary=jsonable(summary))

    def update(self, ctx: IncrementalInput, p: dict) -> None:
        """A new item joins, at every level, the cluster of its nearest earlier item where the
        two are at least that level's similarity (and at every looser level); otherwise it is
        not grouped there (a new id). Nesting holds; earlier items keep their ids. One whose
        neighbours are all new gets the nearest earlier item by a direct query."""
        new, old, ind, inp = ctx.new, ctx.old, ctx.ind, ctx.inp
        is_old = old[np.maximum(ind, 0)] & (ind >= 0)
        first = np.where(is_old.any(axis=1), is_old.argmax(axis=1), -1)
        near = np.where(first >= 0, ind[np.arange(len(new)), np.maximum(first, 0)], -1)
        raw = np.where(first >= 0, ctx.sim[np.arange(len(new)), np.maximum(first, 0)], 0.0)
        miss = np.flatnonzero(near < 0)
        if len(miss):
            old_rows = np.flatnonzero(old)
            j, s = _knn.knn_query(np.asarray(inp.vectors[new[miss]], np.float32),
                                  inp.vectors[old_rows], 1)
            near[miss], raw[miss] = old_rows[j[:, 0]], s[:, 0]
        stored = ctx.read(near, list(self.fields))
        details = ctx.details.get("clusters") or {}
        levels = details.get("levels") or []
        centre = (details.get("state") or {}).get("centre")
        sims = [lv.get("similarity") for lv in levels]
        join = np.ones((len(self.fields), len(new)), bool)
        if centre is not None and len(sims) == len(self.fields) and None not in sims:
            m = decode_array(centre)
            cos = centred_cosine(raw, centre_dots(inp.vectors, m, new),
                                 centre_dots(inp.vectors, m, near), m)
            join = np.stack([cos >= s for s in sims])
            for li in range(len(sims) - 2, -1, -1):
                join[li] |= join[li + 1]
        sizes = ctx.summary.setdefault("clusters", {})
        for li, f in enumerate(self.fields):
            vals = list(stored[f])
            if not join[li].all():
                lv = levels[li]
                nxt = int(lv.get("next_id", lv.get("n_clusters", 0)))
                for j in np.flatnonzero(~join[li]):
                    vals[j], nxt = nxt, nxt + 1
                lv["next_id"] = nxt                     # kept in the run's details
            ctx.put(f, new, vals)
            got = sizes.setdefault(f, {})
            for v in vals:
                if v is not None:
                    got[str(v)] = got.get(str(v), 0) + 1
