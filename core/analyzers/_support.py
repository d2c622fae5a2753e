"""Class support: how strongly each item is supported by the members of each class.

For class ``c`` with ``n_c`` members, ``s_c(i)`` is the mean cosine similarity of item ``i`` to
its ``m_c`` most similar members of ``c`` (itself excluded), ``m_c = clip(n_c // 5, 3, 10)``, so
small classes are judged by fewer neighbours. Classes differ in tightness, so supports are
turned into *normalised distances* ``nd_c(i) = (1 - s_c(i)) / (1 - median_{j in c} s_c(j))``:
1 = as close to class ``c`` as its typical member, 2 = twice as far.

Returns ``own`` (nd to the item's own class) and ``best`` (min over classes, own included) and
``best_class``. Exact blocked kNN per class, so the cost is one N x N x D pass in total.
"""
from __future__ import annotations

import warnings

import numpy as np

from .. import knn as _knn


def members_k(n_c: int, lo: int = 3, hi: int = 10) -> int:
    return int(min(max(n_c // 5, lo), hi))


def class_support(inp, codes: np.ndarray, n_classes: int, progress=None, span=(0.0, 1.0)):
    key = ("class_support", n_classes, hash(codes.tobytes()))
    cache = inp._knn_cache
    if key in cache:
        return cache[key]
    from .base import report

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
        m = members_k(len(idx))
        excl = np.full(n, -1, np.int64)
        excl[idx] = np.arange(len(idx))
        k = min(m, len(idx))
        _, s = _knn.knn_query(v, v[idx], k, exclude=excl)
        s = np.where(np.isfinite(s), s, np.nan)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # rows with no finite sims
            sc = np.nanmean(s, axis=1) if k > 0 else np.full(n, np.nan)
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


def robust_z(x: np.ndarray, floor: float = 1e-6) -> np.ndarray:
    """(x - median) / (1.4826 MAD), NaN-aware, scale floored."""
    fin = x[np.isfinite(x)]
    if len(fin) == 0:
        return np.full_like(x, np.nan, dtype=float)
    med = np.median(fin)
    mad = 1.4826 * np.median(np.abs(fin - med))
    return (x - med) / max(mad, floor)
