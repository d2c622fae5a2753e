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
    """Why the earlier run's summaries cannot place new items (None if they can)."""
    def state(a):
        return (details.get(a) or {}).get("state")

    if "uniqueness" in names and not state("uniqueness"):
        return "the earlier run kept no uniqueness calibration"
    if ("outliers" in names or "mislabels" in names) and len(classes) and not (
            state("outliers") or (state("mislabels") or {}).get("support")):
        return "the earlier run kept no class-support calibration"
    if "mislabels" in names and len(classes) >= 2:
        st = state("mislabels") or {}
        if list(st.get("classes") or []) != list(classes):
            return "the label classes changed"
    return None


def update(inp, new, old, names, params, details, read, read_groups, progress=None, steps=None,
           signatures=None):
    """Analyses the items ``new`` (row indices of ``inp``) against the whole input.

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

    steps = {} if steps is None else steps
    clock = [time.time()]

    def lap(name):
        now = time.time()
        steps[name] = steps.get(name, 0.0) + now - clock[0]
        clock[0] = now

    from .analyzers import REGISTRY
    from .analyzers.support import members_k
    from .analyzers.base import report

    new = np.asarray(new, np.int64)
    codes, classes = inp.label_array()
    if codes is None:
        codes = np.full(len(inp), -1, np.int64)
    C = len(classes)
    counts = np.bincount(codes[codes >= 0], minlength=C) if C else np.zeros(0, np.int64)
    mk = np.array([members_k(int(c)) for c in counts], np.int64)
    k = max(inp.MIN_K, 1)
    report(progress, 0.05, "neighbours of the new items")
    ind, sim, support = rows_neighbours(inp.vectors, new, codes, min(k, len(inp) - 1), mk)
    lap("neighbours and class support")
    out: dict = {}
    summary: dict = dict(added=int(len(new)))

    def put(field, rows, vals):
        col = out.setdefault(field, {})
        for r, v in zip(rows, vals):
            col[int(r)] = v

    if "clusters" in names:
        # the nearest earlier item among the neighbours; otherwise (a new item whose
        # neighbours are all new) the nearest earlier item by a direct query
        is_old = old[np.maximum(ind, 0)] & (ind >= 0)
        first = np.where(is_old.any(axis=1), is_old.argmax(axis=1), -1)
        near = np.where(first >= 0, ind[np.arange(len(new)), np.maximum(first, 0)], -1)
        miss = np.flatnonzero(near < 0)
        if len(miss):
            from . import knn as _knn

            old_rows = np.flatnonzero(old)
            j, _ = _knn.knn_query(np.asarray(inp.vectors[new[miss]], np.float32),
                                  inp.vectors[old_rows], 1)
            near[miss] = old_rows[j[:, 0]]
        fields = list(REGISTRY["clusters"].fields)
        stored = read(near, fields)
        for f in fields:
            put(f, new, stored[f])
        summary["clusters"] = {f: {} for f in fields}
        for f in fields:
            sizes = summary["clusters"][f]
            for v in stored[f]:
                if v is not None:
                    sizes[str(v)] = sizes.get(str(v), 0) + 1

    if "uniqueness" in names:
        from .analyzers.uniqueness import place, raw_distance

        p = params["uniqueness"]
        kk = int(p["uniqueness_k"])
        q = details["uniqueness"]["state"]["dist_quantiles"]
        dist = raw_distance(sim[:, :kk], p["uniqueness_decay"])
        put("vc_uniqueness", new, place(dist, q).astype(float).tolist())

    outlier_conf = None
    if ("outliers" in names or "mislabels" in names) and C:
        from .analyzers.outliers import outlier_confidence

        st = (details.get("outliers") or {}).get("state") or \
            ((details.get("mislabels") or {}).get("state") or {}).get("support")
        meds = np.array([st["class_medians"].get(c, np.nan) for c in classes], np.float64)
        fin = meds[np.isfinite(meds)]
        meds[~np.isfinite(meds)] = float(np.median(fin)) if len(fin) else 0.5
        nd = (1.0 - support) / np.maximum(1.0 - meds, 1e-6)[None, :]
        y = codes[new]
        own = np.where(y >= 0, nd[np.arange(len(new)), np.maximum(y, 0)], np.nan)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            best = np.nanmin(np.where(np.isfinite(nd), nd, np.nan), axis=1)
            a = np.log(np.maximum(own, 1e-6))
            b = np.log(np.maximum(best, 1e-6))
        ref = {kk: tuple(v) for kk, v in st["ref"].items()}
        po = inp.settings("outliers")
        outlier_conf, _ = outlier_confidence(a, b, ref, po)
        outlier_conf[y < 0] = np.nan
        if "outliers" in names:
            put("vc_outlier", new, [None if not np.isfinite(x) else float(x)
                                    for x in outlier_conf])

    if "mislabels" in names and C >= 2:
        from . import knn as _knn
        from .analyzers.mislabels import predict_softmax, decode, mislabel_confidence, vote

        p = params["mislabels"]
        st = details["mislabels"]["state"]
        y = codes[new]
        X = _knn.project(inp.vectors[new], decode(st["pca_mean"]), decode(st["pca_comps"]))
        P_lr = (predict_softmax(decode(st["model"]).astype(np.float64), X, C)
                if st.get("model") else np.full((len(new), C), 1.0 / C))
        kk = int(p["mislabel_k"])
        P_knn = vote(ind[:, :kk], sim[:, :kk], codes, C, float(p["mislabel_dup_sim"]))
        P, conf = mislabel_confidence(P_lr, P_knn, y, p)
        if p["mislabel_outlier_discount"] and outlier_conf is not None:
            conf = conf * (1.0 - np.nan_to_num(outlier_conf, nan=0.0))
        sugg = P.argmax(axis=1)
        put("vc_mislabel", new, [float(c) if l >= 0 else None for c, l in zip(conf, y)])
        put("vc_suggested_label", new, [classes[j] for j in sugg])

    lap("clusters, uniqueness, outliers, mislabels")
    errors = {}
    if "duplicates" in names:
        report(progress, 0.4, "duplicates of the new items")
        changed, errs = _duplicates(inp, new, old, ind, sim, params["duplicates"], read,
                                    read_groups, put, signatures, summary)
        errors.update(errs)
        summary["duplicates_regrouped_earlier_items"] = int(changed)
        lap("duplicates (pixels)")

    if "quality" in names:
        from .analyzers import pixels
        from .analyzers.quality import QualityAnalyzer, confidences, pixel_stats, stat_arrays

        p = params["quality"]
        side = int(p["quality_max_side"])
        stats = dict(inp.shared.pixel_stats.get(side, {}))
        todo = [int(i) for i in new if int(i) not in stats]
        more, errs = pixels.map_items(lambda rgb: pixel_stats(rgb, side), todo,
                                       inp.filepaths, inp.boxes)
        stats.update(more)
        errors.update(errs)
        ok = np.array([int(i) for i in new if int(i) in stats], np.int64)
        thr = (details.get("quality") or {}).get("thresholds")
        if len(ok) and thr:
            lo, hi, sp, ss = stat_arrays(stats, ok)
            bl, dk, br = confidences(lo, hi, sp, ss, thr, p)
            for f, vals in (("vc_blur", bl), ("vc_dark", dk), ("vc_bright", br)):
                put(f, ok, [float(x) for x in vals])
        for f in QualityAnalyzer.fields:
            col = out.setdefault(f, {})
            for r in new:
                col.setdefault(int(r), None)
    lap("quality (pixels)")
    report(progress, 1.0, "incremental analysis done")
    return out, summary, errors


def _duplicates(inp, new, old, ind, sim, p, read, read_groups, put, signatures=None,
                summary=None):
    from .analyzers import pixels
    from .analyzers.duplicates import (DuplicatesAnalyzer, UnionFind, candidate_pairs,
                                       candidate_rule, keep_rule, keep_stats)

    n = len(inp)
    is_new = np.zeros(n, bool)
    is_new[new] = True
    kk = int(p["dup_k"])
    use_pixels, min_sim = candidate_rule(inp, p)
    pairs = candidate_pairs(new, ind[:, :kk], sim[:, :kk], min_sim)
    hash_pairs = []
    if inp.content_hashes is not None:
        first = {}
        for i, h in enumerate(inp.content_hashes):
            if h and not is_new[i]:
                first.setdefault(h, i)
        for i in new:
            h = inp.content_hashes[i]
            if h:
                if h in first and first[h] != i:
                    hash_pairs.append((first[h], int(i)))
                else:
                    first.setdefault(h, int(i))
    stats, errors = {}, {}

    def stored(rows):
        """Signatures the earlier runs kept for these earlier rows (same file content)."""
        rows = [int(r) for r in rows]
        if signatures is None or not use_pixels or not rows:
            return {}
        hashes = inp.content_hashes
        got = signatures.read([inp.ids[r] for r in rows],
                              [hashes[r] for r in rows] if hashes is not None else None)
        return {r: got[inp.ids[r]] for r in rows if inp.ids[r] in got}

    if not use_pixels:
        verified = [tuple(x) for x in pairs]
    elif len(pairs):
        # earlier partners come from the stored signatures; the images decoded here are
        # (nearly all) new ones, whose quality is measured from the same decode
        cached = stored(sorted({int(x) for x in pairs.ravel() if not is_new[x]}))
        verified, stats, errors = DuplicatesAnalyzer()._pixel_verify(inp, pairs, p, None,
                                                                     cached=cached)
        verified += DuplicatesAnalyzer._vector_fallback(inp, pairs, errors, min_sim, p, {})
        if summary is not None:
            summary["duplicates_images"] = dict(inp.shared.dup_decoded or dict(
                decoded=len(np.unique(pairs)), from_store=0, decoded_after_all=0))
    else:
        verified = []
    verified = [(int(x), int(y)) for x, y in list(verified) + hash_pairs]
    # earlier items involved, and the members of their stored groups
    involved = sorted({x for e in verified for x in e if not is_new[x]})
    gid_of = dict(zip(involved, read(np.array(involved, np.int64), ["vc_dup_group"])
                      ["vc_dup_group"])) if involved else {}
    gids = sorted({g for g in gid_of.values() if g})
    group_rows = read_groups(gids) if gids else []
    rows = sorted({x for e in verified for x in e} | {r_ for r_, _ in group_rows} | set(
        int(i) for i in new))
    pos = {r_: j for j, r_ in enumerate(rows)}
    uf = UnionFind(len(rows))
    for x, y in verified:
        uf.union(pos[x], pos[y])
    first_of = {}
    for r_, g in group_rows:
        if g in first_of:
            uf.union(pos[first_of[g]], pos[r_])
        else:
            first_of[g] = r_
    comp = {}
    for r_ in rows:
        comp.setdefault(uf.find(pos[r_]), []).append(r_)
    missing = [r_ for mem in comp.values() if len(mem) > 1 for r_ in mem if r_ not in stats]
    stats.update({r_: v[1] for r_, v in stored([r_ for r_ in missing if not is_new[r_]]).items()})
    missing = [r_ for r_ in missing if r_ not in stats]
    if missing and use_pixels:
        more, _ = pixels.map_items(keep_stats, missing, inp.filepaths, inp.boxes)
        stats.update(more)
    keep_key = keep_rule(inp, stats)
    stored_gid = {r_: g for r_, g in group_rows}
    changed = 0
    for mem in comp.values():
        if len(mem) == 1:
            if is_new[mem[0]]:
                put("vc_dup_group", mem, [None])
                put("vc_duplicate", mem, [False])
            continue
        keep = min(mem, key=keep_key)
        gid = str(inp.ids[keep])
        # new members, and earlier members whose group changed (the group id is the kept
        # item's id, so an unchanged id means unchanged values)
        write = [m for m in mem if is_new[m] or stored_gid.get(m, gid_of.get(m)) != gid]
        changed += sum(not is_new[m] for m in write)
        put("vc_dup_group", write, [gid] * len(write))
        put("vc_duplicate", write, [m != keep for m in write])
    return changed, errors
