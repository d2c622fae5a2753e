"""The cells of the IVF kNN graph (:func:`visual_curation.core.knn.ivf_knn`): k-means centres
trained on a sample, and each row's ``n_probe`` nearest cells.

* Up to :data:`FLAT_MAX` cells (a million rows at the default cell count): one k-means over the
  sample; each row is compared with every centre.
* More cells (several million rows, where the cell count grows with N so that a cell keeps
  about a thousand rows): **two levels**. ``sqrt(n_lists)`` coarse centres, then each coarse
  cell split into fine cells in proportion to its share of the sample. A row is compared with
  the coarse centres, then with the fine centres of its ``coarse_probe`` nearest coarse cells:
  ``~ sqrt(n_lists) * (1 + coarse_probe)`` products a row instead of ``n_lists``, and the
  training is ``sqrt(n_lists) + 1`` small k-means instead of one with ``n_lists`` centres (which
  at ten million rows would cost more than the graph itself).

Both return the fine centres as one ``(n_lists, D)`` array, so the graph passes do not know
which was used.
"""
from __future__ import annotations

import warnings

import numpy as np

#: above this many cells, the two-level quantizer
FLAT_MAX = 2048
#: rows compared with the centres at a time
STEP = 8192


def _kmeans(train, n_centres: int, seed: int, rng=None) -> np.ndarray:
    """k-means centres of ``train`` (float32): k-means++ seeding with one trial per centre on
    a sub-sample (scikit-learn's default 2 + log k trials cost more than the Lloyd iterations
    that follow, for no better cells), then 20 Lloyd iterations."""
    from sklearn.cluster import KMeans, kmeans_plusplus

    n_centres = int(max(1, min(n_centres, len(train))))
    rng = np.random.default_rng(seed) if rng is None else rng
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning on tiny / degenerate inputs
        seeds = train[np.sort(rng.permutation(len(train))[:8 * n_centres])]
        init, _ = kmeans_plusplus(seeds, n_centres, random_state=seed, n_local_trials=1)
        km = KMeans(n_clusters=n_centres, init=init, n_init=1, max_iter=20,
                    random_state=seed).fit(train)
    return km.cluster_centers_.astype(np.float32)


def _nearest(x, cen, cn, m: int):
    """Indices of the ``m`` nearest centres of each row of ``x``, nearest first, and their
    squared distances (up to the rows' own norm)."""
    d2 = cn[None, :] - 2.0 * (x @ cen.T)
    m = min(m, len(cen))
    part = (np.argpartition(d2, m - 1, axis=1)[:, :m] if m < len(cen)
            else np.broadcast_to(np.arange(len(cen)), d2.shape))
    pd = np.take_along_axis(d2, part, axis=1)
    o = np.argsort(pd, axis=1, kind="stable")
    return np.take_along_axis(part, o, axis=1), np.take_along_axis(pd, o, axis=1)


class Cells:
    """Trained cells: ``centres`` (n_lists, D) and, for two levels, ``coarse`` centres and
    ``children`` (per coarse cell, the ids of its fine cells)."""

    def __init__(self, centres, coarse=None, children=None):
        self.centres = centres
        self.coarse = coarse
        self.children = children

    @property
    def n_lists(self) -> int:
        return len(self.centres)

    @property
    def levels(self) -> int:
        return 1 if self.coarse is None else 2


def train_cells(train, n_lists: int, seed: int = 0, rng=None) -> Cells:
    """Cells for ``n_lists`` lists from the float32 sample ``train`` (see the module doc);
    ``rng`` (default: seeded by ``seed``) draws the k-means++ sub-sample."""
    n_lists = int(max(1, min(n_lists, len(train))))
    if n_lists <= FLAT_MAX:
        return Cells(_kmeans(train, n_lists, seed, rng))
    k1 = int(round(np.sqrt(n_lists)))
    coarse = _kmeans(train, k1, seed)
    own, _ = _nearest(train, coarse, (coarse * coarse).sum(axis=1), 1)
    own = own[:, 0]
    share = np.bincount(own, minlength=k1)
    centres, children = [], []
    for c in range(k1):
        rows = train[own == c]
        f = int(max(1, min(round(n_lists * share[c] / len(train)), len(rows))))
        if len(rows) == 0:
            children.append(np.zeros(0, np.int64))
            continue
        cen = _kmeans(rows, f, seed + 1 + c) if f > 1 else rows.mean(axis=0, keepdims=True)
        start = sum(len(x) for x in centres)
        children.append(np.arange(start, start + len(cen), dtype=np.int64))
        centres.append(cen.astype(np.float32))
    return Cells(np.concatenate(centres), coarse, children)


def nearest_cells(vectors, cells: Cells, n_probe: int, coarse_probe: int = 4) -> np.ndarray:
    """``(N, n_probe)`` int32: each row's nearest cells, nearest first (two levels: among the
    fine cells of its ``coarse_probe`` nearest coarse cells; ``-1`` pads a row whose coarse
    cells hold fewer than ``n_probe`` fine cells)."""
    n = len(vectors)
    cen = cells.centres
    cn = (cen * cen).sum(axis=1)
    n_probe = int(max(1, min(n_probe, len(cen))))
    probes = np.empty((n, n_probe), np.int32)
    if cells.levels == 1:
        for b0 in range(0, n, STEP):
            x = np.asarray(vectors[b0:b0 + STEP], np.float32)
            probes[b0:b0 + STEP] = _nearest(x, cen, cn, n_probe)[0]
        return probes
    coarse = cells.coarse
    ccn = (coarse * coarse).sum(axis=1)
    width = max(len(ch) for ch in cells.children)
    # each coarse cell's children, padded with a sentinel cell (index n_lists) at distance inf;
    # the products are done for the real children only (the widest coarse cell can hold
    # several times the mean)
    kids = np.full((len(coarse), width), len(cen), np.int64)
    for c, ch in enumerate(cells.children):
        kids[c, :len(ch)] = ch
    kid_cen = [np.ascontiguousarray(cen[ch]) for ch in cells.children]
    kid_cn = [cn[ch] for ch in cells.children]
    for b0 in range(0, n, STEP):
        x = np.asarray(vectors[b0:b0 + STEP], np.float32)
        top, _ = _nearest(x, coarse, ccn, coarse_probe)
        cand = kids[top].reshape(len(x), -1)       # (B, coarse_probe * width) fine cells
        # the rows grouped by their candidate set's first coarse cell share most centres;
        # the products are done per distinct coarse cell among the candidates
        d2 = np.full(cand.shape, np.inf, np.float32)
        for j in range(top.shape[1]):
            for c in np.unique(top[:, j]):
                if not len(kid_cn[c]):
                    continue
                r = np.flatnonzero(top[:, j] == c)
                d2[r, j * width:j * width + len(kid_cn[c])] = \
                    kid_cn[c][None, :] - 2.0 * (x[r] @ kid_cen[c].T)
        m = min(n_probe, d2.shape[1])
        part = np.argpartition(d2, m - 1, axis=1)[:, :m]
        o = np.argsort(np.take_along_axis(d2, part, axis=1), axis=1, kind="stable")
        got = np.take_along_axis(cand, np.take_along_axis(part, o, axis=1), axis=1)
        probes[b0:b0 + len(x), :m] = np.where(got < len(cen), got, -1)
        probes[b0:b0 + len(x), m:] = -1            # fewer candidate cells than probes
    return probes
