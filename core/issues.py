"""``vc_issues``: the issue names whose stored confidence reaches the run's threshold, derived
from the analyses' fields. A run that changes only thresholds re-derives it from the stored
scores (:func:`rederive_issues`) instead of analysing again."""
from __future__ import annotations

from .analyzers import ISSUES


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
