"""``vc_issues``: the issue names whose stored confidence reaches the run's threshold, derived
from the analyses' fields. A run that changes only thresholds re-derives it from the stored
scores (:func:`rederive_issues`) instead of analysing again."""
from __future__ import annotations

from .analyzers import ISSUES, ISSUES_FIELD


def issue_lists(columns, thresholds, rows):
    """``vc_issues`` of ``rows``: for each, the issues whose field (``columns[field][row]``,
    fields absent from ``columns`` are skipped) reaches the threshold. Returns ``(lists,
    counts per issue)``; the counts cover the issues whose field is present."""
    lists = [[] for _ in rows]
    counts = {}
    for name, spec in ISSUES.items():
        col = columns.get(spec.field)
        if col is None:
            continue
        thr = thresholds[name]
        n = 0
        for j, r in enumerate(rows):
            if spec.hits(col.get(r) if isinstance(col, dict) else col[r], thr):
                lists[j].append(name)
                n += 1
        counts[name] = n
    return lists, counts


def rederive_issues(collection, fields_present, thresholds, commit_process=None):
    """Re-derives ``vc_issues`` of the samples of ``collection`` from their stored issue
    fields (those in ``fields_present``) with new ``thresholds``; returns the counts per
    issue. One read of the score columns, one committed write."""
    from . import fields as vcf
    from .analyze import DESCRIPTIONS, FIELD_TYPES

    wanted = [i.field for i in ISSUES.values() if i.field in fields_present]
    got = collection.values(["id"] + wanted)
    ids, columns = got[0], dict(zip(wanted, got[1:]))
    lists, counts = issue_lists(columns, thresholds, range(len(ids)))
    vcf.set_sample_values(collection, {"vc_issues": lists}, descriptions=DESCRIPTIONS,
                          types=FIELD_TYPES, ids=ids, commit_process=commit_process)
    return counts


def issues_expression(fields_present, thresholds):
    """A MongoDB aggregation expression of ``vc_issues`` from a sample's stored issue fields
    (those in ``fields_present``), equal to :func:`issue_lists`: the issues in analysis order
    whose field reaches the threshold (a flag: is true). A missing, null or NaN score flags
    nothing (BSON orders null and NaN below every number)."""
    parts = []
    for name, spec in ISSUES.items():
        if spec.field not in fields_present:
            continue
        ref = "$" + spec.field
        hit = ({"$eq": [ref, True]} if spec.flag else
               {"$and": [{"$isNumber": ref}, {"$gte": [ref, float(thresholds[name])]}]})
        parts.append({"$cond": [hit, [name], []]})
    return {"$concatArrays": parts} if parts else {"$literal": []}


def rederive_in_bands(dataset, fields_present, thresholds, bands):
    """Re-derives ``vc_issues`` in place (one server-side update, no transfer) of the samples
    of ``dataset`` whose score of an issue lies in that issue's band ``[lo, hi)`` of
    ``bands`` (``{issue: (lo, hi)}``): the only samples whose list can change when the issue's
    threshold moves inside its band. Sets ``last_modified_at``. Returns the samples matched."""
    ors = [{ISSUES[n].field: {"$gte": float(lo), "$lt": float(hi)}}
           for n, (lo, hi) in bands.items() if ISSUES[n].field in fields_present]
    if not ors:
        return 0
    res = dataset._sample_collection.update_many(
        {"$or": ors},
        [{"$set": {ISSUES_FIELD.name: issues_expression(fields_present, thresholds),
                   "last_modified_at": "$$NOW"}}])
    return int(res.matched_count)
