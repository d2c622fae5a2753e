"""Exact cosine k-nearest-neighbours by blocked matrix products (NumPy only).

``knn(vectors, k)`` returns ``(indices, sims)``, both ``(N, k)``, each row sorted by decreasing
cosine similarity, the item itself excluded. Rows of ``vectors`` are expected to be
L2-normalised (so the dot product is the cosine); ``normalize`` does it when they are not.

Memory: the similarity matrix is never materialised. Queries are processed ``block`` rows at a
time against the base in chunks of ``chunk`` rows, so the peak temporary is ``block x chunk``
float32 (64 MiB by default) plus the ``(N, k)`` results, whatever N is. ``vectors`` may be a
``np.memmap``; it is read chunk by chunk.

Ties are broken by the smaller index, so results are deterministic.

``ivf_knn`` is the approximate graph for large N (an inverted-file index: k-means cells, each item
searched in its ``n_probe`` nearest cells, all by blocked matrix products), and ``knn_graph``
picks exact or IVF by size.
"""
from __future__ import annotations

import numpy as np

from . import knn_cells as _cells

#: float32 cells in one ``block x chunk`` similarity tile (16M cells = 64 MiB)
TILE_CELLS = 1 << 24


def normalize(vectors, eps: float = 1e-12) -> np.ndarray:
    """float32 copy with rows scaled to unit L2 norm (zero rows stay zero)."""
    v = np.asarray(vectors, dtype=np.float32)
    n = np.linalg.norm(v, axis=1, keepdims=True)
    return v / np.maximum(n, eps)


def _sizes(n_query: int, n_base: int, block: int | None, chunk: int | None):
    if chunk is None:
        chunk = min(n_base, 65536) if n_base > 0 else 1
    if block is None:
        block = max(64, TILE_CELLS // max(chunk, 1))
    return max(1, min(block, max(n_query, 1))), max(1, chunk)


def _topk_rows(s: np.ndarray, idx: np.ndarray, k: int):
    """top-k columns of each row of ``s`` (values, indices from ``idx``), unsorted."""
    if s.shape[1] <= k:
        return s, np.broadcast_to(idx, s.shape)
    part = np.argpartition(-s, k - 1, axis=1)[:, :k]
    return np.take_along_axis(s, part, axis=1), idx[part]


def knn_query(queries, base, k: int, exclude=None, block: int | None = None,
              chunk: int | None = None):
    """For each query row, the ``k`` most similar rows of ``base``.

    ``exclude``: optional int array, ``exclude[i]`` is a base index that query ``i`` must not
    return (its own row when queries are the base; -1 for none).
    Returns ``(indices (Q, k) int64, sims (Q, k) float32)``; when the base has fewer than ``k``
    eligible rows the missing slots are ``-1`` / ``-inf``.
    """
    q_all = np.asarray(queries)
    n_q, n_b = len(q_all), len(base)
    k = int(k)
    out_i = np.full((n_q, k), -1, np.int64)
    out_s = np.full((n_q, k), -np.inf, np.float32)
    if n_q == 0 or n_b == 0 or k <= 0:
        return out_i, out_s
    block, chunk = _sizes(n_q, n_b, block, chunk)
    chunks = [(c0, min(c0 + chunk, n_b)) for c0 in range(0, n_b, chunk)]
    single = len(chunks) == 1
    base_c = np.ascontiguousarray(base[:, :], dtype=np.float32) if single else None
    for q0 in range(0, n_q, block):
        q1 = min(q0 + block, n_q)
        q = np.ascontiguousarray(q_all[q0:q1], dtype=np.float32)
        best_s = np.full((q1 - q0, k), -np.inf, np.float32)
        best_i = np.full((q1 - q0, k), -1, np.int64)
        rows = np.arange(q1 - q0)
        for c0, c1 in chunks:
            b = base_c if single else np.ascontiguousarray(base[c0:c1], dtype=np.float32)
            s = q @ b.T                                    # (block, chunk) float32
            if exclude is not None:
                ex = np.asarray(exclude[q0:q1])
                hit = (ex >= c0) & (ex < c1)
                s[rows[hit], ex[hit] - c0] = -np.inf
            ts, ti = _topk_rows(s, np.arange(c0, c1, dtype=np.int64), k)
            ms = np.concatenate([best_s, ts], axis=1)
            mi = np.concatenate([best_i, ti], axis=1)
            # stable top-k: ties broken by smaller index (unused slots are -inf/-1, last)
            key_i = np.where(mi < 0, np.iinfo(np.int64).max, mi)
            order = np.lexsort((key_i, -ms), axis=1)[:, :k]
            best_s = np.take_along_axis(ms, order, axis=1)
            best_i = np.take_along_axis(mi, order, axis=1)
        best_i[~np.isfinite(best_s)] = -1
        out_i[q0:q1], out_s[q0:q1] = best_i, best_s
    return out_i, out_s


def knn(vectors, k: int, block: int | None = None, chunk: int | None = None):
    """Exact cosine kNN of every row among the others: ``(indices (N,k), sims (N,k))``.

    Self is excluded; ``k`` is capped at ``N - 1``. Rows sorted by decreasing similarity.
    """
    n = len(vectors)
    k = max(0, min(int(k), n - 1))
    return knn_query(vectors, vectors, k, exclude=np.arange(n), block=block, chunk=chunk)


#: up to this many rows ``knn_graph`` is exact; above, the IVF graph (recall measured in bench)
EXACT_MAX_ROWS = 20000


def knn_graph(vectors, k: int, method: str = "auto", progress=None, **ivf):
    """The kNN graph of ``vectors`` (self excluded): exact up to :data:`EXACT_MAX_ROWS` rows (or
    ``method="exact"``), else :func:`ivf_knn` (``method="ivf"``). Returns ``(ind, sims, info)``,
    ``info`` saying which method ran and with what parameters."""
    n = len(vectors)
    if method not in ("auto", "exact", "ivf"):
        raise ValueError(f"knn method must be 'auto', 'exact' or 'ivf', not {method!r}")
    if method == "exact" or (method == "auto" and n <= EXACT_MAX_ROWS):
        ind, sims = knn(vectors, k)
        return ind, sims, dict(method="exact", n=n, k=int(ind.shape[1]))
    ind, sims, info = ivf_knn(vectors, k, progress=progress, **ivf)
    return ind, sims, info


#: above a million rows the cell count grows with N (about this many rows a cell), so the
#: graph's cost grows as N, not N^1.5
ROWS_PER_CELL = 1000


def ivf_knn(vectors, k: int, n_lists: int | None = None, n_probe: int = 12,
            train_rows: int | None = None, seed: int = 0, progress=None):
    """Approximate cosine kNN of every row among the others (self excluded), for large N.

    The rows are partitioned into ``n_lists`` cells (default ``sqrt(N)``, and above a million
    rows ``N /`` :data:`ROWS_PER_CELL`) by k-means (scikit-learn, trained on a seeded sample of
    ``train_rows`` rows; two levels above :data:`~.knn_cells.FLAT_MAX` cells, see
    :mod:`.knn_cells`); every row is searched in its ``n_probe`` nearest cells. The work is done cell by cell as matrix products: first each
    cell against itself (every row's nearest cell, which sets a good running k-th similarity),
    then, for each cell, the rows that probe it from outside, where only tiles beating a row's
    running k-th similarity are merged. Cost ``~ N * n_probe * (N / n_lists) * D`` (linear in N
once the cells stop growing); memory: the
    ``(N, k)`` results plus one cell's tile. Works on a memmap.

    Returns ``(ind (N,k), sims (N,k) float32, info)`` sorted by decreasing similarity; ``ind``
    is int32 below 2^31 rows (half the memory of int64: 1.2 GB at ten million rows and
    k = 32), else int64. Missing slots (fewer than ``k`` candidates in the probed cells) are
    ``-1`` / ``-inf``.
    """
    n = len(vectors)
    k = max(0, min(int(k), n - 1))
    if n_lists is None:
        n_lists = int(round(max(np.sqrt(n), n / ROWS_PER_CELL)))
    n_lists = int(max(1, min(n_lists, n)))
    n_probe = int(max(1, min(n_probe, n_lists)))
    info = dict(method="ivf", n=n, k=k, n_lists=n_lists, n_probe=n_probe)
    it = np.int32 if n < 2**31 else np.int64      # row ids (results and probe lists)
    if n == 0 or k == 0:
        return np.full((n, k), -1, it), np.full((n, k), -np.inf, np.float32), info
    rng = np.random.default_rng(seed)
    m = int(min(n, train_rows or max(40 * n_lists, 20000)))
    sample = np.sort(rng.choice(n, m, replace=False))
    _report(progress, 0.0, "k-means cells")
    cells = _cells.train_cells(np.asarray(vectors[sample], np.float32), n_lists, seed, rng)
    info.update(n_lists=cells.n_lists, quantizer_levels=cells.levels)
    n_lists = cells.n_lists
    probes = _cells.nearest_cells(vectors, cells, n_probe)
    _report(progress, 0.1, "cells assigned")
    order, starts = _group_by_cell(probes[:, 0], np.arange(n, dtype=it), n_lists)
    visit_q, vstarts = _group_by_cell(probes[:, 1:].ravel(),
                                      np.repeat(np.arange(n, dtype=it), n_probe - 1), n_lists)
    del probes
    sizes, visits = np.diff(starts).astype(np.float64), np.diff(vstarts).astype(np.float64)
    # row pairs the two passes multiply (x D multiply-adds each): cells need not be equal
    info["products"] = int((sizes * sizes).sum() + (sizes * visits).sum())
    # the results are allocated once the cells' temporaries are gone (peaks do not add up)
    best_s = np.full((n, k), -np.inf, np.float32)
    best_i = np.full((n, k), -1, it)

    def merge(q, s, cols):
        _merge_topk(best_s, best_i, q, s, cols, k)

    q_block = max(256, TILE_CELLS // max(int(np.diff(starts).max()), 1))
    for j in range(n_lists):                      # pass 1: every cell against itself
        mem = order[starts[j]:starts[j + 1]]
        if len(mem) < 2:
            continue
        b = np.ascontiguousarray(vectors[mem], dtype=np.float32)
        for q0 in range(0, len(mem), q_block):
            s = b[q0:q0 + q_block] @ b.T
            r = np.arange(len(s))
            s[r, q0 + r] = -np.inf
            merge(mem[q0:q0 + q_block], s, mem)
        if j % 64 == 0:
            _report(progress, 0.1 + 0.2 * j / n_lists, "nearest neighbours (own cell)")
    def probed(j):
        if j % 64 == 0:
            _report(progress, 0.3 + 0.7 * j / n_lists, "nearest neighbours (probed cells)")

    # pass 2: rows probing the cell from outside
    _probe_cells(vectors, vectors, order, starts, visit_q, vstarts, merge, q_block,
                 on_cell=probed)
    _sort_rows(best_s, best_i)
    _report(progress, 1.0, "nearest neighbours")
    return best_i, best_s, info


def _group_by_cell(cell, rows, n_lists):
    """``(rows ordered by cell, starts)``: the rows of cell ``j`` are
    ``out[starts[j]:starts[j + 1]]``; cell ``-1`` (the two-level quantizer's padding) is
    dropped."""
    if (cell < 0).any():
        keep = cell >= 0
        cell, rows = cell[keep], rows[keep]
    o = np.argsort(cell, kind="stable")
    rows = rows[o]
    cell = cell[o]
    del o
    return rows, np.searchsorted(cell, np.arange(n_lists + 1))


#: :func:`knn_search` is exact up to this many query x base pairs (or base rows up to
#: :data:`EXACT_MAX_ROWS`); above, :func:`ivf_query`
EXACT_MAX_PAIRS = 1 << 28


def knn_search(queries, base, k: int, exclude=None):
    """:func:`knn_query` where it is cheap (a base of up to :data:`EXACT_MAX_ROWS` rows or up to
    :data:`EXACT_MAX_PAIRS` query x base pairs), else :func:`ivf_query`. Same returns."""
    n_q, n_b = len(queries), len(base)
    if n_b <= EXACT_MAX_ROWS or n_q * n_b <= EXACT_MAX_PAIRS:
        return knn_query(queries, base, k, exclude=exclude)
    return ivf_query(queries, base, k, exclude=exclude)


def ivf_query(queries, base, k: int, exclude=None, n_lists: int | None = None,
              n_probe: int = 16, train_rows: int | None = None, seed: int = 0):
    """Approximate :func:`knn_query`: the ``k`` most similar rows of ``base`` for each query
    row, searched in the query's ``n_probe`` nearest of ``n_lists`` k-means cells of the base
    (cells as in :func:`ivf_knn`). Cost: the cells' training plus
    ``Q * n_probe * (B / n_lists) * D`` instead of ``Q * B * D``.

    ``exclude[i]``: a base index query ``i`` must not return (-1 for none). Returns
    ``(indices (Q, k) int64, sims (Q, k) float32)`` sorted by decreasing similarity; missing
    slots are ``-1`` / ``-inf``.

    >>> import numpy as np
    >>> v = normalize(np.random.default_rng(0).standard_normal((3000, 16)))
    >>> ind, _ = ivf_query(v[:5], v, 3, exclude=np.arange(5), n_lists=20, n_probe=20)
    >>> bool((ind == knn_query(v[:5], v, 3, exclude=np.arange(5))[0]).all())
    True
    """
    n_q, n_b = len(queries), len(base)
    k = max(0, min(int(k), n_b))
    best_s = np.full((n_q, k), -np.inf, np.float32)
    best_i = np.full((n_q, k), -1, np.int64)
    if n_q == 0 or k == 0:
        return best_i, best_s
    if n_lists is None:
        n_lists = int(round(max(np.sqrt(n_b), n_b / ROWS_PER_CELL)))
    n_lists = int(max(1, min(n_lists, n_b)))
    n_probe = int(max(1, min(n_probe, n_lists)))
    rng = np.random.default_rng(seed)
    m = int(min(n_b, train_rows or max(40 * n_lists, 20000)))
    sample = np.sort(rng.choice(n_b, m, replace=False))
    cells = _cells.train_cells(np.asarray(base[sample], np.float32), n_lists, seed, rng)
    n_lists = cells.n_lists
    order, starts = _group_by_cell(_cells.nearest_cells(base, cells, 1)[:, 0],
                                   np.arange(n_b, dtype=np.int64), n_lists)
    visit_q, vstarts = _group_by_cell(_cells.nearest_cells(queries, cells, n_probe).ravel(),
                                      np.repeat(np.arange(n_q, dtype=np.int64), n_probe), n_lists)
    _probe_cells(queries, base, order, starts, visit_q, vstarts,
                 lambda q, s, cols: _merge_topk(best_s, best_i, q, s, cols, k),
                 max(256, TILE_CELLS // max(int(np.diff(starts).max()), 1)),
                 exclude=None if exclude is None else np.asarray(exclude, np.int64))
    _sort_rows(best_s, best_i)
    return best_i, best_s


def _probe_cells(queries, base, order, starts, visit_q, vstarts, merge, q_block, exclude=None,
                 on_cell=None):
    """For each cell ``j``: the queries that probe it (``visit_q[vstarts[j]:vstarts[j + 1]]``)
    against its base rows (``order[starts[j]:starts[j + 1]]``), ``q_block`` queries a tile,
    each tile handed to ``merge(query rows, sims, base rows)``; ``exclude[i]``: a base row
    query ``i`` must not get; ``on_cell(j)`` after each cell with work."""
    for j in range(len(starts) - 1):
        mem = order[starts[j]:starts[j + 1]]
        qs = visit_q[vstarts[j]:vstarts[j + 1]]
        if len(mem) == 0 or len(qs) == 0:
            continue
        b = np.ascontiguousarray(base[mem], dtype=np.float32)
        for q0 in range(0, len(qs), q_block):
            q = qs[q0:q0 + q_block]
            s = np.asarray(queries[q], np.float32) @ b.T
            if exclude is not None:
                s[exclude[q][:, None] == mem[None, :]] = -np.inf
            merge(q, s, mem)
        if on_cell is not None:
            on_cell(j)


def _merge_topk(best_s, best_i, q, s, cols, k):
    """Merges the similarities ``s`` (rows ``q``, base columns ``cols``) into each row's
    running top-``k`` (``best_s`` / ``best_i``, unsorted); tiles that beat no row's running
    k-th similarity are skipped."""
    thr = best_s[q, k - 1]                        # the k-th largest (argpartition keeps it there)
    hit = (s > thr[:, None]).any(axis=1)
    if not hit.any():
        return
    q, s = q[hit], s[hit]
    t = min(k, s.shape[1])
    if s.shape[1] > t:
        part = np.argpartition(-s, t - 1, axis=1)[:, :t]
    else:
        part = np.broadcast_to(np.arange(s.shape[1]), s.shape)
    ms = np.concatenate([best_s[q], np.take_along_axis(s, part, axis=1)], axis=1)
    mi = np.concatenate([best_i[q], cols[part]], axis=1)
    o = np.argpartition(-ms, k - 1, axis=1)[:, :k]
    best_s[q] = np.take_along_axis(ms, o, axis=1)
    best_i[q] = np.take_along_axis(mi, o, axis=1)


def _sort_rows(best_s, best_i, block: int = 65536):
    """Each row by decreasing similarity, ties by the smaller index, empty slots (-inf) last
    as ``-1``; in row blocks (no (N, k) temporaries)."""
    for b0 in range(0, len(best_s), block):
        bs, bi = best_s[b0:b0 + block], best_i[b0:b0 + block]
        o = np.lexsort((np.where(bi < 0, np.iinfo(np.int64).max, bi), -bs), axis=1)
        bs[:] = np.take_along_axis(bs, o, axis=1)
        bi[:] = np.take_along_axis(bi, o, axis=1)
        bi[~np.isfinite(bs)] = -1


def _report(progress, frac, msg):
    if progress is not None:
        try:
            progress(float(frac), msg)
        except Exception:  # noqa: BLE001 - a failing callback never stops the work
            pass


def pca(vectors, dims: int, block: int = 65536, sample: int | None = None, seed: int = 0):
    """Principal axes of ``vectors`` by an eigendecomposition of the covariance, accumulated in
    blocks (works on a memmap; memory D x D). Returns ``(mean (D,), components (dims, D))``.
    ``sample``: use at most this many rows (random, seeded) to estimate them."""
    n, d = len(vectors), vectors.shape[1]
    dims = int(max(1, min(dims, d, n)))
    rows = np.arange(n)
    if sample is not None and n > sample:
        rows = np.sort(np.random.default_rng(seed).choice(n, sample, replace=False))
    s = np.zeros(d, np.float64)
    g = np.zeros((d, d), np.float64)
    for b0 in range(0, len(rows), block):
        x = np.asarray(vectors[rows[b0:b0 + block]], dtype=np.float64)
        s += x.sum(axis=0)
        g += x.T @ x
    m = len(rows)
    mean = s / max(m, 1)
    cov = g / max(m, 1) - np.outer(mean, mean)
    from scipy.linalg import eigh
    from threadpoolctl import threadpool_limits

    # one thread: multi-threaded LAPACK is up to 10x slower on a busy machine
    with threadpool_limits(1):
        vals, vecs = eigh(cov, subset_by_index=[d - dims, d - 1], driver="evr")
    order = np.argsort(vals)[::-1]
    comps = vecs[:, order].T
    # deterministic sign: largest-magnitude coordinate positive
    sign = np.sign(comps[np.arange(len(comps)), np.abs(comps).argmax(axis=1)])
    comps *= np.where(sign == 0, 1, sign)[:, None]
    return mean.astype(np.float32), comps.astype(np.float32)


def project(vectors, mean, comps, block: int = 65536, dtype=np.float32) -> np.ndarray:
    """``(vectors - mean) @ comps.T`` in blocks, computed in float32, stored as ``dtype``."""
    n = len(vectors)
    out = np.empty((n, len(comps)), dtype)
    for b0 in range(0, n, block):
        x = np.asarray(vectors[b0:b0 + block], dtype=np.float32)
        out[b0:b0 + block] = (x - mean) @ comps.T
    return out
