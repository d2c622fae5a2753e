"""Class support: how strongly each item is supported by the members of each class.

For class ``c`` with ``n_c`` members, ``s_c(i)`` is the mean cosine similarity of item ``i`` to
its ``m_c`` most similar members of ``c`` (itself excluded), ``m_c = clip(n_c // 5, 3, 10)``, so
small classes are judged by fewer neighbours. Classes differ in tightness, so supports are
turned into *normalised distances* ``nd_c(i) = (1 - s_c(i)) / (1 - median_{j in c} s_c(j))``:
1 = as close to class ``c`` as its typical member, 2 = twice as far.

Returns ``own`` (nd to the item's own class) and ``best`` (min over classes, own included) and
``best_class``.

Two ways, chosen by the input's kNN graph:

* exact (the graph is exact, N small): blocked kNN of every item against each class, one
  N x N x D pass in total;
* from the graph (large N, approximate graph): for each item, the classes among its graph
  neighbours. A class with at least ``m_c`` members there has its exact top-``m_c`` mean; a
  class with fewer is estimated by filling the missing members with the row's last (k-th)
  similarity (an upper bound; where such an estimate would be an item's best class, it is
  replaced by its support searched as below, up to ``refine_rounds`` times); classes absent
  from the neighbourhood are not candidates for ``best``. An item whose *own* class is not
  covered (the interesting ones: mislabels, outliers) gets its own-class support from a query
  against that class's members: exact (blocked) while items x class size is small, else
  searched in the members' IVF cells (:func:`knn.knn_search`), so the cost grows with the
  uncovered items x sqrt(class size), not N x N.
"""
from __future__ import annotations

import warnings

import numpy as np

from .. import knn as _knn


def members_k(n_c: int, lo: int = 3, hi: int = 10) -> int:
    return int(min(max(n_c // 5, lo), hi))


def _mean_top(v, rows, members, k, n):
    """Mean cosine of each of ``rows`` to its ``k`` most similar ``members`` (itself excluded
    when it is one); NaN where there is none. Exact (blocked) while rows x members is small,
    else searched in the members' IVF cells (:func:`knn.knn_search`)."""
    pos = np.full(n, -1, np.int64)
    pos[members] = np.arange(len(members))
    k = min(int(k), len(members))
    if k == 0:
        return np.full(len(rows), np.nan)
    _, s = _knn.knn_search(v[rows], v[members], k, exclude=pos[rows])
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # rows with no finite sims
        return np.nanmean(np.where(np.isfinite(s), s, np.nan), axis=1)


def class_support(inp, codes: np.ndarray, n_classes: int, progress=None, span=(0.0, 1.0)):
    key = (n_classes, hash(codes.tobytes()))
    cache = inp.shared.class_support
    if key in cache:
        return cache[key]
    from .base import report

    if inp.knn_info().get("method") != "exact":
        out = _support_from_graph(inp, codes, n_classes, progress, span)
        cache[key] = out
        return out
    n = len(codes)
    v = inp.vectors
    own = np.full(n, np.nan)
    best = np.full(n, np.inf)
    best_c = np.full(n, -1, np.int64)
    meds = np.full(n_classes, np.nan)
    counts = np.bincount(codes[codes >= 0], minlength=n_classes)
    order = np.argsort(-counts, kind="stable")
    for t, c in enumerate(order):
        idx = np.flatnonzero(codes == c)
        if len(idx) == 0:
            continue
        sc = _mean_top(v, np.arange(n), idx, members_k(len(idx)), n)
        mem = sc[idx]
        mem = mem[np.isfinite(mem)]
        if len(mem):
            meds[c] = float(np.median(mem))
        else:  # a class of one: judged against the typical class tightness
            fin = meds[np.isfinite(meds)]
            meds[c] = float(np.median(fin)) if len(fin) else 0.5
        nd = (1.0 - sc) / max(1.0 - meds[c], 1e-6)
        own[idx] = nd[idx]
        better = np.isfinite(nd) & (nd < best)
        best[better] = nd[better]
        best_c[better] = c
        report(progress, span[0] + (span[1] - span[0]) * (t + 1) / max(len(order), 1),
               "class support")
    best[~np.isfinite(best)] = np.nan
    out = dict(own=own, best=best, best_class=best_c, medians=meds)
    cache[key] = out
    return out


def _support_from_graph(inp, codes, n_classes, progress=None, span=(0.0, 1.0), block=65536,
                        refine_rounds=3):
    from .base import report

    n = len(codes)
    counts = np.bincount(codes[codes >= 0], minlength=n_classes)
    mk = np.array([members_k(int(c)) for c in counts], np.int64)
    ind, sim = inp.knn(inp.MIN_K)
    K = ind.shape[1]
    pr, pc, ps, pcov = [], [], [], []          # (row, class, support estimate, exact?)
    for b0 in range(0, n, block):
        I, S = ind[b0:b0 + block], sim[b0:b0 + block]
        b = len(I)
        L = np.where(I >= 0, codes[np.maximum(I, 0)], -1)
        last = np.where(np.isfinite(S), S, np.inf).min(axis=1)
        last = np.where(np.isfinite(last), last, 0.0)
        rr = np.repeat(np.arange(b), K)
        cc, ss, jj = L.ravel(), S.ravel(), np.tile(np.arange(K), b)
        ok = cc >= 0
        rr, cc, ss, jj = rr[ok], cc[ok], ss[ok], jj[ok]
        o = np.lexsort((jj, cc, rr))
        rr, cc, ss = rr[o], cc[o], ss[o]
        new = np.ones(len(rr), bool)
        new[1:] = (rr[1:] != rr[:-1]) | (cc[1:] != cc[:-1])
        gstart = np.flatnonzero(new)
        rank = np.arange(len(rr)) - np.repeat(gstart, np.diff(np.append(gstart, len(rr))))
        keep = rank < mk[cc]
        rr, cc, ss, new = rr[keep], cc[keep], ss[keep], new[keep]
        g = np.flatnonzero(new)
        tot = np.add.reduceat(ss.astype(np.float64), g) if len(g) else np.zeros(0)
        cnt = np.diff(np.append(g, len(rr)))
        gr, gc = rr[g], cc[g]
        m = mk[gc]
        pr.append(gr + b0)
        pc.append(gc)
        ps.append((tot + (m - cnt) * last[gr]) / m)
        pcov.append(cnt >= m)
        report(progress, span[0] + (span[1] - span[0]) * 0.5 * min(b0 + b, n) / max(n, 1),
               "class support")
    pr, pc = np.concatenate(pr), np.concatenate(pc)
    ps, pcov = np.concatenate(ps), np.concatenate(pcov)
    own_s = np.full(n, np.nan)
    is_own = (pc == codes[pr]) & pcov
    own_s[pr[is_own]] = ps[is_own]
    # own class not covered by the graph: exact query against the class's members
    todo = np.flatnonzero((codes >= 0) & ~np.isfinite(own_s))
    v = inp.vectors
    for c in np.unique(codes[todo]):
        rows = todo[codes[todo] == c]
        own_s[rows] = _mean_top(v, rows, np.flatnonzero(codes == c), mk[c], n)
    report(progress, span[0] + (span[1] - span[0]) * 0.9, "class support")
    meds = np.full(n_classes, np.nan)
    lab = codes >= 0
    if lab.any():
        srt = np.argsort(codes[lab], kind="stable")
        cl, vals = codes[lab][srt], own_s[lab][srt]
        for c, chunk in zip(*_split_by(cl, vals)):
            fin = chunk[np.isfinite(chunk)]
            if len(fin) and counts[c] > 1:
                meds[c] = float(np.median(fin))
    fin = meds[np.isfinite(meds)]
    meds[~np.isfinite(meds)] = float(np.median(fin)) if len(fin) else 0.5
    den = np.maximum(1.0 - meds, 1e-6)
    own = np.where(lab, (1.0 - own_s) / den[np.maximum(codes, 0)], np.nan)
    best = np.where(np.isfinite(own), own, np.inf)
    best_c = np.where(np.isfinite(own), codes, -1).astype(np.int64)
    other = pc != codes[pr]                        # own class is ``own`` (always exact)
    pr, pc, ps, pcov = pr[other], pc[other], ps[other], pcov[other]
    for round_ in range(refine_rounds + 1):
        nd = (1.0 - ps) / den[pc]
        o = np.lexsort((nd, pr))                   # per row, smallest normalised distance first
        first = np.ones(len(o), bool)
        first[1:] = pr[o][1:] != pr[o][:-1]
        top = o[first]
        wins = top[nd[top] < best[pr[top]]]
        est = wins[~pcov[wins]]                    # a winning class known only by its estimate
        if not len(est) or round_ == refine_rounds:
            break
        for c in np.unique(pc[est]):               # exact support for those (item, class) pairs
            sel = est[pc[est] == c]
            ps[sel] = _mean_top(v, pr[sel], np.flatnonzero(codes == c), mk[c], n)
            pcov[sel] = True
    r, d, c = pr[wins], nd[wins], pc[wins]
    best[r], best_c[r] = d, c
    best[~np.isfinite(best)] = np.nan
    return dict(own=own, best=best, best_class=best_c, medians=meds)


def _split_by(sorted_keys, values):
    """``(keys, value chunks)`` for runs of equal keys in a sorted array."""
    if not len(sorted_keys):
        return [], []
    b = np.flatnonzero(np.diff(sorted_keys)) + 1
    return sorted_keys[np.append(0, b)], np.split(values, b)


def robust_ref(x: np.ndarray, floor: float = 1e-6) -> tuple:
    """(median, 1.4826 MAD floored) of the finite values; (nan, 1) if there are none."""
    fin = x[np.isfinite(x)]
    if len(fin) == 0:
        return float("nan"), 1.0
    med = float(np.median(fin))
    return med, max(1.4826 * float(np.median(np.abs(fin - med))), floor)
