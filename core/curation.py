"""Curation views, App-free: which samples a clean-up keeps or drops, which near-duplicate
groups leak across splits, the most unique samples and a cluster's members.

Every function takes a FiftyOne collection (a dataset or a view) and returns views, ids or
counts. The App operators (``operators/curation.py``, ``operators/search.py``) check their form,
call these and show the result; the SDK can call them directly::

    from visual_curation.core import curation

    kept, dropped = curation.clean_views(dataset, drop_duplicates=True, issues=["blur"])
    view, groups = curation.leakage(dataset, split_field="split")
"""
from __future__ import annotations

from .analyzers import ISSUES

#: the issues a clean-up drops by name: all but the duplicate copies, which ``drop_duplicates``
#: drops (every group keeps one)
DROPPABLE_ISSUES = tuple(i for i, spec in ISSUES.items() if spec.field != "vc_duplicate")
#: the built-in sample fields that never name a split
_NOT_SPLITS = {"id", "filepath", "tags", "metadata", "created_at", "last_modified_at"}


# ------------------------------------------------------------------------------ clean-up

def drop_expression(drop_duplicates=True, issues=()):
    """The match expression of the samples a clean-up drops: duplicate copies
    (``vc_duplicate``) and/or samples with any of ``issues`` in ``vc_issues``. Raises
    ``ValueError`` for an unknown issue, or when nothing would be dropped."""
    from fiftyone import ViewField as F

    issues = list(issues or [])
    unknown = [i for i in issues if i not in ISSUES]
    if unknown:
        raise ValueError(f"Unknown issues {unknown}: choose among {', '.join(ISSUES)}")
    conds = []
    if drop_duplicates:
        conds.append(F("vc_duplicate") == True)  # noqa: E712 - a MongoDB expression
    if issues:
        conds.append(F("vc_issues").exists() & F("vc_issues").contains(issues))
    if not conds:
        raise ValueError("Nothing to drop: drop the duplicate copies, or name issues")
    drop = conds[0]
    for c in conds[1:]:
        drop = drop | c
    return drop


def clean_views(collection, drop_duplicates=True, issues=()):
    """``(kept, dropped)``: the views of ``collection`` a clean-up keeps and drops.
    ``drop_duplicates`` is ignored where no duplicates analysis ran (no ``vc_duplicate``)."""
    has_dups = collection._dataset.has_sample_field("vc_duplicate")
    drop = drop_expression(drop_duplicates and has_dups, issues)
    return collection.match(~drop), collection.match(drop)


def clean_counts(collection, drop_duplicates=True, issues=()):
    """What a clean-up of ``collection`` keeps and drops, before running it::

        {"total": n, "kept": n, "dropped": n, "reasons": {"duplicate": n, "blur": n, ...}}

    ``reasons`` counts the samples dropped for each reason (one sample can have several):
    ``duplicate`` the copies (``vc_duplicate``; every group keeps one), each issue the samples
    with it in ``vc_issues``."""
    from fiftyone import ViewField as F

    has_dups = collection._dataset.has_sample_field("vc_duplicate")
    _, dropped = clean_views(collection, drop_duplicates, issues)
    reasons = {}
    if drop_duplicates and has_dups:
        reasons["duplicate"] = len(dropped.match(F("vc_duplicate") == True))  # noqa: E712
    if issues:
        found = dropped.count_values("vc_issues")
        reasons.update({i: int(found.get(i, 0)) for i in issues})
    total, n_drop = len(collection), len(dropped)
    return {"total": total, "kept": total - n_drop, "dropped": n_drop, "reasons": reasons}


def counts_text(counts):
    """One line for a person: ``Keeps 950 of 1,070 samples; drops 120 (duplicate 30, blur
    12; a sample can have several reasons)``."""
    why = ", ".join(f"{k} {v:,}" for k, v in counts["reasons"].items())
    several = "; a sample can have several reasons" if len(counts["reasons"]) > 1 else ""
    return (f"Keeps {counts['kept']:,} of {counts['total']:,} samples; drops "
            f"{counts['dropped']:,}" + (f" ({why}{several})" if why else ""))


def clean(collection, name, drop_duplicates=True, issues=(), new_dataset=False,
          delete_originals=False):
    """Keeps the samples of ``collection`` that :func:`clean_views` keeps, as the saved view
    ``name`` of the dataset, or (``new_dataset``) as a new persistent dataset ``name`` that
    carries the analysis (:func:`.carry.carry_results`: vectors, run records, similarity
    index), so the panel and search work on it at once; ``delete_originals`` also deletes the
    dropped samples from the dataset.

    Returns :func:`clean_counts` plus ``"saved_view"`` or ``"dataset"`` (and ``"carried"``:
    the tables and runs copied), and ``"deleted"`` when deleting.
    """
    dataset = collection._dataset
    counts = clean_counts(collection, drop_duplicates, issues)
    kept, dropped = clean_views(collection, drop_duplicates, issues)
    out = dict(counts)
    if new_dataset:
        from .carry import carry_results

        clone = kept.clone(name, persistent=True)
        out["dataset"] = clone.name
        carried = carry_results(dataset, clone)
        out["carried"] = {"tables": len(carried["tables"]), "runs": len(carried["runs"])}
    else:
        dataset.save_view(name, kept, description="Visual Curation: duplicates and issues "
                                                  "removed")
        out["saved_view"] = name
    if delete_originals:
        ids = dropped.values("id")
        dataset.delete_samples(ids)
        out["deleted"] = len(ids)
    return out


# ------------------------------------------------------------------------------ split leakage

def split_fields(dataset):
    """Sample fields that can name a split: strings, ints, bools and Classifications (not
    Visual Curation's, not the built-ins), sorted."""
    import fiftyone.core.fields as fof
    import fiftyone.core.labels as fol

    out = []
    for name, field in dataset.get_field_schema().items():
        if name in _NOT_SPLITS or name.startswith("vc_") or name.startswith("_"):
            continue
        if isinstance(field, (fof.StringField, fof.IntField, fof.BooleanField)):
            out.append(name)
        elif isinstance(field, fof.EmbeddedDocumentField) and issubclass(
                field.document_type, fol.Classification):
            out.append(name)
    return sorted(out)


def split_tags(dataset):
    """The dataset's sample tags (candidates for naming splits), sorted."""
    return sorted(t for t in dataset.distinct("tags") if t)


def default_split_tags(tags):
    """The usual split names among ``tags`` (train, val, validation, test), else all of them."""
    return [t for t in tags if t in ("train", "val", "validation", "test")] or list(tags)


def leakage(collection, split_field=None, split_tags=None):
    """The near-duplicate groups (``vc_dup_group``) of ``collection`` whose members lie in two
    or more splits, the splits being the values of ``split_field`` (a string, int, bool or
    Classification field) or, when ``split_tags`` is given, those sample tags.

    Returns ``(view of the leaking groups' samples sorted by group, sorted group ids)``.
    """
    from fiftyone import ViewField as F

    grouped = collection.exists("vc_dup_group")
    if split_tags is not None:
        splits = set(split_tags)
        groups, tag_lists = grouped.values(["vc_dup_group", "tags"])
        per_sample = [[t for t in (ts or []) if t in splits] for ts in tag_lists]
    else:
        if not split_field:
            raise ValueError("Give a split field, or split tags")
        path = split_field
        f = collection._dataset.get_field(split_field)
        if getattr(f, "document_type", None) is not None:
            path = f"{split_field}.label"
        groups, vals = grouped.values(["vc_dup_group", path])
        per_sample = [[v] if v is not None else [] for v in vals]
    spans = {}
    for g, s in zip(groups, per_sample):
        spans.setdefault(g, set()).update(s)
    leaky = sorted((g for g, s in spans.items() if len(s) > 1), key=str)
    view = grouped.match(F("vc_dup_group").is_in(leaky)).sort_by("vc_dup_group")
    return view, leaky


# ------------------------------------------------------------------------------ uniqueness

def default_unique_count(collection):
    """How many of the most unique samples to keep by default: half, at least one."""
    return max(1, len(collection) // 2)


def most_unique(collection, count=None, threshold=None):
    """The samples of ``collection`` with a ``vc_uniqueness`` score, most unique first: those
    scoring at least ``threshold`` when it is given, else the ``count`` most unique (default:
    :func:`default_unique_count`)."""
    from fiftyone import ViewField as F

    base = collection.exists("vc_uniqueness")
    if threshold is not None:
        return base.match(F("vc_uniqueness") >= float(threshold)).sort_by(
            "vc_uniqueness", reverse=True)
    n = int(count if count is not None else default_unique_count(collection))
    return base.sort_by("vc_uniqueness", reverse=True).limit(n)


# ------------------------------------------------------------------------------ clusters

def cluster_members(collection, level, cluster, limit=1000):
    """Ids of (at most ``limit``) samples of cluster ``cluster`` at granularity ``level``."""
    from fiftyone import ViewField as F

    return collection.match(F(f"vc_cluster_{int(level)}") == cluster).limit(limit).values("id")
