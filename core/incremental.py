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
* anomaly: its isolation (neighbour distance), off-centre and off-spread distances, on the
  geometry refitted on the earlier items and the earlier run's robust references;
* mislabels: the earlier run's classifier (PCA + softmax of its last fold) and a kNN vote;
* quality: its pixel statistics against the earlier run's dataset thresholds.

A full run happens instead when there is no earlier run with the same settings, when earlier
items were removed, relabelled or re-embedded, or when the items added since the last full run
exceed ``MAX_SHARE`` of the dataset (the calibration would drift).

:func:`earlier_run` decides whether ``analyze`` can extend the earlier run, :func:`extend_run`
does it (through :func:`update`, then one committed write and the run record).
"""
from __future__ import annotations

import logging
import time
import warnings

import numpy as np

from . import fields as vcf
from . import runs as vcr
from . import store as vcs
from .issues import issue_lists

logger = logging.getLogger(__name__)

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


# -- the run's side: is there an earlier run to extend, and extending it -------------------

def encode_ids(ids):
    import base64

    return base64.b64encode(b"".join(bytes.fromhex(i) for i in ids)).decode("ascii")


def decode_ids(text):
    import base64

    raw = base64.b64decode(text)
    return [raw[j:j + 12].hex() for j in range(0, len(raw), 12)]


def labels_hash(labels):
    return vcr.params_hash(list(labels)) if labels is not None else None


def earlier_run(dataset, key, prev, names, label_field, patches_field, conf, thresholds,
                      run_params, ids, labels, v_ids, store, incremental, force):
    """The earlier run that this one can extend (``dict`` with its record and the rows of the
    earlier items), or None when a full run is needed (logged with the reason)."""
    if incremental is False or force or patches_field or prev is None:
        return None

    def full(why):
        (logger.warning if incremental else logger.info)(
            "analyze: full run (%s)", why)
        return None

    same = (sorted(prev.get("analyses") or []) == sorted(names)
            and prev.get("label_field") == label_field
            and prev.get("embeddings") == conf["table"]
            and prev.get("thresholds") == thresholds and prev.get("params") == run_params)
    if not same:
        return full("the settings differ from the earlier run")
    res = vcr.load_results(dataset, key) or {}
    state = res.get("incremental")
    if not state:
        return full("the earlier run has no incremental state")
    prev_ids = decode_ids(state["ids"])
    row_of = {i: r for r, i in enumerate(v_ids)}
    rows = [row_of.get(i) for i in prev_ids]
    if any(r is None for r in rows):
        return full("items of the earlier run were removed or lost their vectors")
    if labels is not None:
        lab_of = dict(zip(ids, labels))
        if labels_hash([lab_of[i] for i in prev_ids]) != state.get("labels"):
            return full("labels of earlier items changed, e.g. accepted suggestions: the "
                        "label analyses learn from every label")
    added = len(v_ids) - len(prev_ids)
    if added <= 0:
        return full("no new items")
    since = int(state.get("added_since_full", 0)) + added
    if since > MAX_SHARE * len(v_ids):
        return full(f"{since} items added since the last full run, over "
                    f"{MAX_SHARE:.0%} of the dataset")
    # vectors of earlier items rewritten since that run (changed files re-embedded)
    import pyarrow as pa
    import pyarrow.compute as pc
    from datetime import datetime, timezone

    t = store.read(["id", "created_at"])
    at = pa.scalar(datetime.fromtimestamp(state["at"], timezone.utc),
                   t.schema.field("created_at").type)
    later = t.filter(pc.fill_null(pc.greater(t.column("created_at"), at), False))
    old_set = set(prev_ids)
    redone = sum(1 for i in later.column("id").to_pylist() if i in old_set)
    if redone:
        return full(f"{redone} earlier items were re-embedded")
    classes = sorted({str(x) for x in labels if x is not None}) if labels is not None else []
    why = missing_state(names, res.get("details") or {}, classes)
    if why:
        return full(why)
    old = np.zeros(len(v_ids), bool)
    old[rows] = True
    return dict(record=prev, results=res, state=state, old=old, since=since,
                table=conf["table"], uri=store.uri)


def extend_run(collection, inp, base, names, params, thresholds, key, fingerprint,
                       overwrite, progress, t0, commit_process=None):
    """Adds the new items to the earlier run (see :mod:`.incremental`) and writes their fields
    (and those of earlier items whose duplicate group they joined)."""
    from fiftyone import ViewField as F

    from .analyze import (DESCRIPTIONS, FIELD_TYPES, keep_signatures, plain,
                          report_pixel_errors)


    dataset = collection._dataset
    old = base["old"]
    new = np.flatnonzero(~old)
    details = (base["results"].get("details") or {})
    prm = {a: inp.settings(a) for a in names}
    row_of = {i: r for r, i in enumerate(inp.ids)}

    def read(rows, fields):
        want = list(dict.fromkeys(inp.ids[int(r)] for r in rows))
        got = dataset.select(want).values(["id"] + list(fields)) if want else [[]] * (
            len(fields) + 1)
        maps = {f: dict(zip(got[0], got[j + 1])) for j, f in enumerate(fields)}
        return {f: [maps[f].get(inp.ids[int(r)]) for r in rows] for f in fields}

    def read_groups(gids):
        got = dataset.match(F("vc_dup_group").is_in(list(gids))).values(["id", "vc_dup_group"])
        return [(row_of[i], g) for i, g in zip(*got) if i in row_of]

    steps = base["steps"]
    signatures = vcs.PixelSignatures(base["table"], uri=base["uri"])
    vals, inc, errors = update(inp, new, old, names, prm, details, read, read_groups,
                               progress, steps=steps, signatures=signatures)
    keep_signatures(inp, signatures, replace=False)
    if errors:
        report_pixel_errors(collection, None, {inp.ids[r]: m for r, m in errors.items()},
                            {}, overwrite)
    t = time.time()
    rows = sorted({r for col in vals.values() for r in col})
    # vc_issues: from the written values; earlier items keep theirs but for "duplicate"
    earlier = [r for r in rows if old[r]]
    stored_issues = read(earlier, ["vc_issues"])["vc_issues"] if earlier else []
    prev_issues = dict(zip(earlier, stored_issues))
    issues, counts = {}, {}
    for r in rows:
        if old[r]:
            had = prev_issues.get(r) or []
            lst = [x for x in had if x != "duplicate"]
            if vals.get("vc_duplicate", {}).get(r):
                lst.insert(0, "duplicate")
            counts["duplicate"] = counts.get("duplicate", 0) + (
                ("duplicate" in lst) - ("duplicate" in had))
            issues[r] = lst
            continue
        lst, got = issue_lists(vals, thresholds, [r])
        for k, v in got.items():
            counts[k] = counts.get(k, 0) + v
        issues[r] = lst[0]
    vals["vc_issues"] = issues
    keep = vcf.KEEP
    out = {f: [plain(col[r]) if r in col else keep for r in rows]
           for f, col in vals.items()}
    vcf.set_sample_values(collection, out, descriptions=DESCRIPTIONS, overwrite=overwrite,
                          types=FIELD_TYPES, ids=[inp.ids[r] for r in rows],
                          commit_process=commit_process)
    steps["write"] = time.time() - t
    # the record: the earlier run extended by the new items
    res = base["results"]
    summary = dict(res.get("summary") or {})
    summary["items"] = len(collection)
    summary["analysed"] = int(len(inp))
    summary["issues"] = {k: int(v) + counts.get(k, 0)
                         for k, v in (summary.get("issues") or {}).items()}
    levels = ((details.get("clusters") or {}).get("levels")) or []
    for lv, (f, sizes) in enumerate((inc.pop("clusters", None) or {}).items()):
        if lv < len(levels):
            by_id = {c["id"]: c for c in levels[lv].get("clusters") or []}
            for cid, nadd in sizes.items():
                if int(cid) in by_id:
                    by_id[int(cid)]["size"] += nadd
    inc["seconds"] = round(time.time() - t0, 3)
    inc["timings"] = {k: round(v, 3) for k, v in steps.items()}
    inc["added_since_full"] = base["since"]
    summary["incremental"] = inc
    summary["seconds"] = inc["seconds"]
    state = dict(base["state"], ids=encode_ids(inp.ids), labels=labels_hash(inp.labels),
                 at=t0, added_since_full=base["since"])
    record = {k: v for k, v in base["record"].items() if k not in ("method", "cls", "type")}
    vcr.save(dataset, key, vcr.METHOD_ANALYSIS,
             dict(record, fingerprint=fingerprint, basis=base["basis"]),
             results=dict(summary=summary, details=details, incremental=state))
    logger.info("analyze: incremental, %s", inc)
    return summary
