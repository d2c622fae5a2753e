"""Data-quality review: per-issue thresholds changed after the analysis, without analysing again.

An analysis stores a confidence per issue (``vc_mislabel``, ``vc_blur``, … in [0, 1]; the
duplicate issue is a yes/no flag, ``vc_duplicate``) and ``vc_issues``: the issues whose
confidence reaches the run's threshold. :func:`set_issue_thresholds` moves thresholds and
re-derives ``vc_issues`` from the stored scores: only the items whose score lies between the
old and the new threshold can change, so only those are rewritten, in place by the database
(one filtered update, :func:`.issues.rederive_in_bands`; nothing is transferred). The bands
being rewritten are kept on the run record until the write is done, so a call that was
interrupted is finished by the next one. The thresholds
stay on the analysis run record, so later runs (``analyze`` without ``thresholds``) keep them.

:func:`tag_flagged` tags an issue's flagged items, :func:`mark_reviewed` marks an issue as
reviewed; both are remembered on the run record (:func:`review_state` reads it), until the next
analysis that recomputes the scores. :func:`issue_histograms` gives the score distributions
(what the cluster panel's health section draws under its sliders).

Thresholds are the dataset's (one per analysis run: images, or the objects of one Detections
field): every item of the dataset is re-derived, whichever view is passed.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from datetime import datetime, timezone

from . import runs as vcr
from .analyzers import DEFAULT_THRESHOLD, ISSUES, ISSUES_FIELD
from .issues import rederive_in_bands

logger = logging.getLogger(__name__)

#: the run-config key holding ``{issue: {"reviewed": {...}, "tagged": {...}}}``
REVIEW = "review"
#: the run-config key of a re-derivation under way: ``{issue: [lo, hi]}`` score bands
PENDING = "pending_bands"
HIST_BINS = 20


def scored_issues() -> list[str]:
    """The issues with a confidence (a threshold applies), in analysis order; the others
    (duplicate) are yes/no flags."""
    return [n for n, s in ISSUES.items() if not s.flag]


def _key(patches_field):
    from .analyze import analysis_run_key

    return analysis_run_key(patches_field)


def _record(dataset, patches_field):
    conf = vcr.load_config(dataset, _key(patches_field))
    if not conf:
        kind = f"the objects of {patches_field!r}" if patches_field else "this dataset"
        raise ValueError(f"No analysis of {kind} yet: run vc.analyze first")
    return conf


def stored_thresholds(dataset, *, patches_field: str | None = None) -> dict[str, float]:
    """The thresholds of the last analysis run (0.5 for any issue it does not name); the
    defaults when there is no run."""
    conf = vcr.load_config(dataset._dataset, _key(patches_field)) or {}
    return {**{k: DEFAULT_THRESHOLD for k in ISSUES}, **(conf.get("thresholds") or {})}


def _check(thresholds):
    out = {}
    for name, value in (thresholds or {}).items():
        if name not in ISSUES:
            raise ValueError(f"Unknown issue {name!r}; issues are {list(ISSUES)}")
        if ISSUES[name].flag:
            raise ValueError(f"{name!r} is a yes/no flag ({ISSUES[name].field}); it has no "
                             f"threshold. Thresholds apply to {scored_issues()}")
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"Threshold of {name!r} must be a number in [0, 1], not "
                             f"{value!r}") from None
        if not 0.0 <= v <= 1.0:
            raise ValueError(f"Threshold of {name!r} must be in [0, 1], not {v}")
        out[name] = v
    return out


def _prefix(dataset, patches_field):
    from .fields import label_list_path

    return label_list_path(dataset, patches_field) + "." if patches_field else ""


def _present(dataset, patches_field, names=None):
    """The issue fields (or ``names``) stored on the dataset: sample fields, or detection
    attributes, which the schema may not declare (the run record lists what it wrote)."""
    pre = _prefix(dataset, patches_field)
    names = [s.field for s in ISSUES.values()] if names is None else names
    written = set()
    if patches_field:
        written = set((vcr.load_config(dataset, _key(patches_field)) or {}).get("fields") or [])
    return [f for f in names if pre + f in written or dataset.has_field(pre + f)]


def set_issue_thresholds(dataset, thresholds: Mapping[str, float], *,
                         patches_field: str | None = None, wait: float = 5.0) -> dict:
    """Sets per-issue thresholds and re-derives ``vc_issues`` from the stored scores (no
    analysis runs). Issues not named keep their current threshold.

    Args:
        dataset: a dataset or view: its dataset's items are all re-derived (thresholds belong
            to the analysis run)
        thresholds: ``{issue: threshold in [0, 1]}`` for issues with a confidence
            (``scored_issues()``; ``duplicate`` is a flag and has none)
        patches_field: the objects of this Detections field (their analysis run)
        wait: seconds to wait for a running analysis of the dataset

    Returns:
        ``{"thresholds": all thresholds, "issues": {issue: items flagged}, "changed": items
        whose vc_issues changed, "seconds": ...}``

    Example::

        import visual_curation as vc

        summary = vc.set_issue_thresholds(dataset, {"mislabel": 0.7, "blur": 0.8})
        summary["issues"]["mislabel"]     # samples flagged at 0.7
        view = vc.flagged_view(dataset, "mislabel")   # them, most confident first
    """
    from .locks import run_lock

    t0 = time.perf_counter()
    ds = dataset._dataset
    given = _check(thresholds)
    with run_lock(ds, "analysis", wait=wait):
        conf = _record(ds, patches_field)
        old = {**{k: DEFAULT_THRESHOLD for k in ISSUES}, **(conf.get("thresholds") or {})}
        new = {**old, **given}
        present = _present(ds, patches_field)
        moved = [n for n in scored_issues() if ISSUES[n].field in present
                 and float(old[n]) != float(new[n])]
        full = not _present(ds, patches_field, [ISSUES_FIELD.name])
        if patches_field:
            changed = _rederive_objects(ds, patches_field, present, new) if moved or full else 0
        elif full:
            changed = _rederive_all(ds, present, new)
        else:
            bands = _bands(conf.get(PENDING), {n: (old[n], new[n]) for n in moved})
            changed = 0
            if bands:
                # journal: an interrupted write is finished by the next call (its bands join)
                vcr.update_config(ds, _key(None), conf := dict(conf, **{PENDING: bands}))
                changed = rederive_in_bands(ds, present, new, bands)
        conf = {k: v for k, v in conf.items() if k != PENDING}
        counts = flagged_counts(ds, patches_field=patches_field)
        record = dict(conf, thresholds=new, issue_counts=counts)
        if conf.get("basis"):  # analyze() with these thresholds is then a no-op
            record["fingerprint"] = vcr.params_hash(dict(basis=conf["basis"], thresholds=new))
        vcr.update_config(ds, _key(patches_field), record)
    secs = time.perf_counter() - t0
    logger.info("set_issue_thresholds: %d items changed in %.2f s", changed, secs)
    return dict(thresholds=new, issues=counts, changed=changed, seconds=round(secs, 3))


def _bands(pending, moved):
    """``{issue: [lo, hi]}``: the score ranges whose items' ``vc_issues`` must be re-derived,
    the moved thresholds' ``[min(old, new), max(old, new))`` joined with those of a write
    that was interrupted (``pending``, from the run record)."""
    out = {n: [float(lo), float(hi)] for n, (lo, hi) in (pending or {}).items()}
    for n, (a, b) in moved.items():
        lo, hi = min(a, b), max(a, b)
        if n in out:
            lo, hi = min(lo, out[n][0]), max(hi, out[n][1])
        out[n] = [float(lo), float(hi)]
    return out


def _rederive_all(ds, present, thresholds):
    """Every sample's ``vc_issues`` (the field was never written)."""
    from .issues import rederive_issues

    rederive_issues(ds, present, thresholds)
    return len(ds)


def _rederive_objects(ds, patches_field, present, thresholds):
    """Object view: ``vc_issues`` of every object of ``patches_field`` (attributes of the
    detections are written per field, so the whole field is re-derived)."""
    from . import fields as vcf
    from .analyze import DESCRIPTIONS
    from .issues import issue_lists

    pre = _prefix(ds, patches_field)
    got = ds.values([pre + "id"] + [pre + f for f in present])
    flat = [[x for sub in col for x in (sub or [])] for col in got]
    ids, columns = flat[0], dict(zip(present, flat[1:]))
    lists, _ = issue_lists(columns, thresholds, range(len(ids)))
    vcf.set_label_values(ds, patches_field, {ISSUES_FIELD.name: dict(zip(ids, lists))},
                         descriptions=DESCRIPTIONS)
    return len(ids)


def flagged_counts(collection, *, patches_field: str | None = None) -> dict[str, int]:
    """``{issue: items of the collection flagged with it}`` (0 for every issue whose field is
    stored), one aggregation."""
    ds = collection._dataset
    pre = _prefix(ds, patches_field)
    present = _present(ds, patches_field)
    counts = {s.name: 0 for s in ISSUES.values() if s.field in present}
    path = pre + ISSUES_FIELD.name
    if _present(ds, patches_field, [ISSUES_FIELD.name]):
        pipe = [{"$unwind": "$" + pre[:-1]}] if patches_field else []
        pipe += [{"$project": {"i": "$" + path}}, {"$unwind": "$i"},
                 {"$group": {"_id": "$i", "n": {"$sum": 1}}}]
        for d in collection._aggregate(pipeline=pipe):
            if d["_id"] is not None:
                counts[str(d["_id"])] = int(d["n"])
    return counts


def flagged_view(collection, issue: str, *, patches_field: str | None = None):
    """The items of ``collection`` flagged with ``issue``, highest confidence first: samples,
    or (``patches_field``) the patches of the flagged objects."""
    from fiftyone import ViewField as F

    spec = _spec(issue)
    if patches_field:
        return (collection.filter_labels(patches_field, F(ISSUES_FIELD.name).contains(issue))
                .to_patches(patches_field))
    view = collection.match(F(ISSUES_FIELD.name).contains(issue))
    return view if spec.flag else view.sort_by(spec.field, reverse=True)


def _spec(issue):
    if issue not in ISSUES:
        raise ValueError(f"Unknown issue {issue!r}; issues are {list(ISSUES)}")
    return ISSUES[issue]


def _now():
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _remember(ds, patches_field, issue, what, entry):
    """Stores ``entry`` (None: removes it) as ``review[issue][what]`` on the run record."""
    conf = _record(ds, patches_field)
    review = {k: dict(v) for k, v in (conf.get(REVIEW) or {}).items()}
    mine = review.setdefault(issue, {})
    if entry is None:
        mine.pop(what, None)
    else:
        mine[what] = entry
    vcr.update_config(ds, _key(patches_field), dict(conf, **{REVIEW: review}))


def tag_flagged(collection, issue: str, *, tag: str | None = None,
                patches_field: str | None = None) -> dict:
    """Adds ``tag`` (default ``vc_flagged_<issue>``) to the items of ``collection`` flagged
    with ``issue`` (samples; objects' label tags with ``patches_field``). Other tags are left
    as they are. Remembered on the run record (tag, count, threshold, time).

    Example::

        import visual_curation as vc

        done = vc.tag_flagged(dataset, "mislabel")     # {"tag": "vc_flagged_mislabel", ...}
        dataset.match_tags(done["tag"])
    """
    from fiftyone import ViewField as F

    ds = collection._dataset
    _spec(issue)
    _record(ds, patches_field)
    tag = (tag or "").strip() or f"vc_flagged_{issue}"
    if patches_field:
        sub = collection.filter_labels(patches_field, F(ISSUES_FIELD.name).contains(issue))
        count = sub.count(_prefix(ds, patches_field) + "id")
        sub.tag_labels(tag, label_fields=[patches_field])
    else:
        sub = collection.match(F(ISSUES_FIELD.name).contains(issue))
        count = len(sub)
        sub.tag_samples(tag)
    entry = dict(tag=tag, count=int(count), at=_now(),
                 threshold=stored_thresholds(ds, patches_field=patches_field).get(issue))
    _remember(ds, patches_field, issue, "tagged", entry)
    return entry


def mark_reviewed(dataset, issue: str, *, reviewed: bool = True,
                  patches_field: str | None = None) -> dict | None:
    """Marks ``issue`` as reviewed (``reviewed=False`` removes the mark) on the run record,
    with the threshold and the number of items flagged at that moment.

    Example::

        import visual_curation as vc

        vc.mark_reviewed(dataset, "blur")
        vc.review_state(dataset)["blur"]["reviewed"]   # {"at": ..., "threshold": 0.5, ...}
    """
    ds = dataset._dataset
    _spec(issue)
    entry = None
    if reviewed:
        entry = dict(at=_now(), threshold=stored_thresholds(
            ds, patches_field=patches_field).get(issue),
            flagged=flagged_counts(ds, patches_field=patches_field).get(issue, 0))
    _remember(ds, patches_field, issue, "reviewed", entry)
    return entry


def review_state(dataset, *, patches_field: str | None = None) -> dict[str, dict]:
    """``{issue: {"threshold", "flag", "reviewed", "tagged"}}`` for every issue whose field
    is stored (``reviewed``/``tagged``: None, or what :func:`mark_reviewed` /
    :func:`tag_flagged` remembered); ``{}`` before any analysis."""
    ds = dataset._dataset
    conf = vcr.load_config(ds, _key(patches_field))
    if not conf:
        return {}
    th = {**{k: DEFAULT_THRESHOLD for k in ISSUES}, **(conf.get("thresholds") or {})}
    review = conf.get(REVIEW) or {}
    present = set(_present(ds, patches_field))
    return {n: dict(threshold=None if s.flag else float(th[n]), flag=s.flag,
                    reviewed=(review.get(n) or {}).get("reviewed"),
                    tagged=(review.get(n) or {}).get("tagged"))
            for n, s in ISSUES.items() if s.field in present}


def issue_histograms(collection, *, bins: int = HIST_BINS,
                     patches_field: str | None = None) -> dict[str, dict]:
    """The distribution of each stored issue score over ``collection``, one aggregation:
    ``{issue: {"counts": [per bin], "edges": [bins + 1 edges over [0, 1]], "scored": items
    with a score}}``; for a flag issue ``{"flag": True, "count": items flagged, "scored"}``."""
    ds = collection._dataset
    pre = _prefix(ds, patches_field)
    present = _present(ds, patches_field)
    specs = [s for s in ISSUES.values() if s.field in present]
    if not specs:
        return {}
    edges = [i / bins for i in range(bins + 1)]
    pipe = []
    if patches_field:
        pipe.append({"$unwind": "$" + pre[:-1]})
    pipe.append({"$project": {f"s{j}": "$" + pre + s.field for j, s in enumerate(specs)}})
    facets = {}
    for j, s in enumerate(specs):
        v = f"$s{j}"
        if s.flag:
            facets[f"f{j}"] = [{"$group": {"_id": None, "n": {"$sum": {"$cond": [
                {"$eq": [v, True]}, 1, 0]}}, "m": {"$sum": {"$cond": [
                    {"$eq": [{"$type": v}, "bool"]}, 1, 0]}}}}]
        else:
            facets[f"f{j}"] = [
                {"$match": {f"s{j}": {"$type": "number", "$gte": 0}}},
                {"$bucket": {"groupBy": v, "boundaries": edges[:-1] + [1.0 + 1e-9],
                             "default": "other", "output": {"n": {"$sum": 1}}}}]
    pipe.append({"$facet": facets})
    res = list(collection._aggregate(pipeline=pipe))
    res = res[0] if res else {}
    out = {}
    for j, s in enumerate(specs):
        docs = res.get(f"f{j}") or []
        if s.flag:
            d = docs[0] if docs else {}
            out[s.name] = dict(flag=True, count=int(d.get("n") or 0),
                               scored=int(d.get("m") or 0))
            continue
        counts = [0] * bins
        for d in docs:
            if d["_id"] != "other":
                counts[min(int(round(float(d["_id"]) * bins)), bins - 1)] += int(d["n"])
        out[s.name] = dict(counts=counts, edges=edges, scored=sum(counts))
    return out
