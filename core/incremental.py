"""Incremental analysis: after a full run, samples added to the dataset are analysed on their own
and placed on the earlier run's calibration, in time proportional to the new samples.

What each analysis does for a new item (the earlier items keep their values, except where a new
item joins their duplicate group):

* clusters: the cluster ids, at every level, of its nearest earlier item (so nesting holds);
* duplicates: candidates among its nearest neighbours and exact copies by content hash, verified
  on pixels like a full run; a group it joins is regrouped (the item to keep is chosen again
  among all members, which may change the earlier members' ``vc_dup_group``/``vc_duplicate``);
* uniqueness: its weighted neighbour distance placed on the earlier run's distance quantiles;
* outliers: its exact support by every class, normalised by each class's typical support and
  the robust z-score references of the earlier run;
* mislabels: the earlier run's classifier (PCA + softmax of its last fold) and a kNN vote;
* quality: its pixel statistics against the earlier run's dataset thresholds.

A full run happens instead when there is no earlier run with the same settings, when earlier
items were removed, relabelled or re-embedded, or when the items added since the last full run
exceed ``MAX_SHARE`` of the dataset (the calibration would drift).
"""
from __future__ import annotations

import warnings

import numpy as np

MAX_SHARE = 0.10


def rows_neighbours(vectors, rows, codes, k, mk, q_block=2048, c_block=16384):
    """One blocked pass of the items ``rows`` against every item: their ``k`` nearest
    neighbours (self excluded; ``(ind, sim)`` sorted by decreasing similarity) and, for each
    class ``c``, the mean similarity to its ``mk[c]`` most similar members (self excluded; NaN
    for a class with none) - the exact class support."""
    n = len(vectors)
    R = len(rows)
    C = len(mk)
    codes = np.full(n, -1, np.int64) if codes is None else np.asarray(codes)
    rowpos = np.full(n, -1, np.int64)
    rowpos[rows] = np.arange(R)
    order = np.argsort(codes, kind="stable")
    cls, starts = np.unique(codes[order], return_index=True)
    ends = np.append(starts[1:], n)
    K = max(int(k), int(max(mk)) if C else 0)
    ind = np.full((R, k), -1, np.int64)
    sim = np.full((R, k), -np.inf, np.float32)
    support = np.full((R, C), np.nan)
    for q0 in range(0, R, q_block):
        q = rows[q0:q0 + q_block]
        Q = np.asarray(vectors[q], np.float32)
        gi, gs = [], []
        for c, a, b in zip(cls, starts, ends):
            members = order[a:b]
            bi = np.zeros((len(q), 0), np.int64)
            bs = np.zeros((len(q), 0), np.float32)
            for m0 in range(0, len(members), c_block):
                mb = members[m0:m0 + c_block]
                S = Q @ np.asarray(vectors[mb], np.float32).T
                hit = rowpos[mb]
                sel = (hit >= q0) & (hit < q0 + len(q))
                if sel.any():
                    S[hit[sel] - q0, np.flatnonzero(sel)] = -np.inf
                t = min(K, S.shape[1])
                part = np.argpartition(S, S.shape[1] - t, axis=1)[:, S.shape[1] - t:]
                bs = np.concatenate([bs, np.take_along_axis(S, part, axis=1)], axis=1)
                bi = np.concatenate([bi, mb[part]], axis=1)
                if bs.shape[1] > K:
                    p2 = np.argpartition(-bs, K - 1, axis=1)[:, :K]
                    bs, bi = np.take_along_axis(bs, p2, axis=1), np.take_along_axis(bi, p2, axis=1)
            if c >= 0 and bs.shape[1]:
                top = -np.sort(-bs, axis=1)[:, :int(mk[c])]
                with np.errstate(all="ignore"), warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    support[q0:q0 + len(q), c] = np.nanmean(
                        np.where(np.isfinite(top), top, np.nan), axis=1)
            gi.append(bi)
            gs.append(bs)
        gi, gs = np.concatenate(gi, axis=1), np.concatenate(gs, axis=1)
        o = np.argsort(-gs, axis=1, kind="stable")[:, :k]
        s = np.take_along_axis(gs, o, axis=1)
        i = np.where(np.isfinite(s), np.take_along_axis(gi, o, axis=1), -1)
        sim[q0:q0 + len(q), :s.shape[1]] = s
        ind[q0:q0 + len(q), :i.shape[1]] = i
    return ind, sim, support


def missing_state(names, details, classes):
    """Why the earlier run's summaries cannot place new items (None if they can): the first
    reason any of the analyses ``names`` gives."""
    from .analyzers import REGISTRY
    from .analyzers.base import Analyzer

    for name in names:
        if type(REGISTRY[name]).update is Analyzer.update:
            return f"{name} has no incremental update"
        why = REGISTRY[name].missing_state(details, classes)
        if why:
            return why
    return None


def update(inp, new, old, names, params, details, read, read_groups, progress=None, steps=None,
           signatures=None):
    """Analyses the items ``new`` (row indices of ``inp``) against the whole input: one pass
    for their neighbours and class support, then each analyzer's ``update`` (see
    :class:`~visual_curation.core.analyzers.base.IncrementalInput`).

    ``old``: bool mask of the rows analysed by the earlier run; ``params``: ``{analysis:
    parameters}``; ``details``: the earlier run's per-analysis summaries; ``read(rows,
    fields)`` returns the stored values of earlier rows; ``read_groups(group ids)`` returns
    ``[(row, group id)]`` for the stored members of those duplicate groups; ``signatures``
    (a :class:`~visual_curation.core.store.PixelSignatures`) holds the duplicate-check
    thumbnails that earlier runs kept, so earlier images need not be decoded again.

    Returns ``(values {field: {row: value}}, summary, errors {row: message})``; ``steps``
    (a dict) receives the seconds of each step.
    """
    import time

    from .analyzers import REGISTRY
    from .analyzers.base import IncrementalInput, report
    from .analyzers.support import members_k

    steps = {} if steps is None else steps
    t = time.time()
    new = np.asarray(new, np.int64)
    codes, classes = inp.label_array()
    if codes is None:
        codes = np.full(len(inp), -1, np.int64)
    counts = np.bincount(codes[codes >= 0], minlength=len(classes)) if classes else \
        np.zeros(0, np.int64)
    mk = np.array([members_k(int(c)) for c in counts], np.int64)
    report(progress, 0.05, "neighbours of the new items")
    ind, sim, support = rows_neighbours(inp.vectors, new, codes,
                                        min(max(inp.MIN_K, 1), len(inp) - 1), mk)
    steps["neighbours and class support"] = time.time() - t
    ctx = IncrementalInput(inp=inp, new=new, old=old, ind=ind, sim=sim, support=support,
                           codes=codes, classes=classes, details=details, read=read,
                           read_groups=read_groups, signatures=signatures,
                           summary=dict(added=int(len(new))))
    for j, name in enumerate(n for n in REGISTRY if n in names):
        report(progress, 0.1 + 0.9 * j / len(names), name)
        t = time.time()
        REGISTRY[name].update(ctx, params[name])
        steps[name] = steps.get(name, 0.0) + time.time() - t
    report(progress, 1.0, "incremental analysis done")
    return ctx.values, ctx.summary, ctx.errors
