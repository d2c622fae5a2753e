"""Fixing labels, App-free: accept the suggested labels of the mislabels analysis, and undo.

A label that is changed keeps what it was, on the label itself::

    ground_truth.label              "bag"        ← was "shirt"
    ground_truth.vc_previous_label  "shirt"      the label before the first accepted change
    ground_truth.vc_relabeled_at    2026-11-30T… when it changed (UTC)
    ground_truth.tags               [..., "vc_relabeled"]   the label tag to review changes by

Nothing else on the label changes: its id, confidence, attributes and box stay as they were.
:func:`undo_relabel` restores the previous label exactly (and removes the two attributes and the
tag). In object view (``patches_field``) the labels are the detections of that field, and the
suggestions their ``vc_suggested_label`` attributes::

    import visual_curation as vc

    res = vc.accept_suggestions(dataset, "ground_truth", min_confidence=0.8)
    res["changed"]                       # labels changed
    vc.undo_relabel(dataset, "ground_truth")
"""
from __future__ import annotations

from datetime import datetime, timezone

from . import fields as vcf

#: the label tag every accepted change carries until it is undone
RELABELED_TAG = "vc_relabeled"
PREVIOUS = "vc_previous_label"
CHANGED_AT = "vc_relabeled_at"


def _label_path(collection, label_field, patches_field):
    """``(path of the label list or label, is_list)`` after checking the field's kind."""
    import fiftyone.core.labels as fol

    dataset = collection._dataset
    if patches_field:
        if label_field not in (None, patches_field):
            raise ValueError("In object view the labels are the detections' own labels: "
                             f"pass label_field={patches_field!r}")
        return vcf.label_list_path(dataset, patches_field), True
    if not label_field or not dataset.has_sample_field(label_field):
        raise ValueError(f"No label field {label_field!r} on dataset {dataset.name!r}")
    doc = getattr(dataset.get_field(label_field), "document_type", None)
    if doc is None or not issubclass(doc, fol.Classification):
        kind = doc.__name__ if doc is not None else type(dataset.get_field(label_field)).__name__
        raise ValueError(f"{label_field!r} holds {kind}, not a Classification: in object view "
                         "pass patches_field (the detections' field)")
    return label_field, False


def _declare(dataset, path):
    """Declares our two attributes under ``path`` so that the App's sidebar can filter them."""
    import fiftyone as fo

    for name, kind in ((PREVIOUS, fo.StringField), (CHANGED_AT, fo.DateTimeField)):
        if not dataset.has_field(f"{path}.{name}"):
            dataset.add_sample_field(f"{path}.{name}", kind)


def _attr(label, name):
    try:
        return label[name]
    except (KeyError, AttributeError):
        return None


def _edit(collection, path, is_list, change, ids=None):
    """Calls ``change(label, sample_id) -> bool`` on every label of ``collection`` (or those
    whose id, a sample id in image view and a label id in object view, is in ``ids``) and
    writes back only the samples where a label changed. Returns ``(labels changed, ids of the
    samples written)``."""
    dataset = collection._dataset
    view = collection
    if ids is not None:
        view = (collection.select(list(ids)) if not is_list else
                collection.select_labels(ids=list(ids), fields=path.split(".")[0]))
        want = set(ids) if is_list else None
    sample_ids = view.values("id")
    docs = collection.select(sample_ids).values(path) if sample_ids else []
    changed, touched = 0, {}
    for sid, doc in zip(sample_ids, docs):
        hit = False
        for lab in ((doc or []) if is_list else ([doc] if doc is not None else [])):
            if ids is not None and is_list and lab.id not in want:
                continue
            if change(lab, sid):
                changed += 1
                hit = True
        if hit:
            touched[sid] = doc
    if touched:
        _declare(dataset, path)
        dataset.select(list(touched)).set_values(path, touched, key_field="id")
    return changed, list(touched)


def accept_suggestions(collection, label_field: str | None = None, *,
                       ids: list[str] | None = None, min_confidence: float = 0.5,
                       patches_field: str | None = None) -> dict:
    """Writes each label's suggestion (``vc_suggested_label``) into the label itself.

    Args:
        collection: a dataset or view
        label_field: the Classification field the mislabels analysis read (image view)
        ids: only these samples (image view) or labels (object view), whatever their
            confidence; None: every label of ``collection`` whose ``vc_mislabel`` ≥
            ``min_confidence``
        min_confidence: the least mislabel confidence accepted when ``ids`` is None
        patches_field: object view: the detections' field (the labels are its detections)

    Returns:
        ``{"changed": n, "unchanged": m, "sample_ids": [...]}``: labels changed, labels of the
        selection left alone because they had no suggestion or already carried it, and the
        samples whose labels changed

    Example::

        vc.analyze(dataset, label_field="ground_truth")
        vc.accept_suggestions(dataset, "ground_truth", min_confidence=0.9)
    """
    label_field = label_field or patches_field
    path, is_list = _label_path(collection, label_field, patches_field)
    dataset = collection._dataset
    has = (dataset.has_field(f"{path}.vc_suggested_label") or
           dataset.count(f"{path}.vc_suggested_label") > 0) if is_list else \
        dataset.has_sample_field("vc_suggested_label")
    if not has:
        raise ValueError("No suggested labels yet: run the mislabels analysis with this label "
                         "field first")
    if ids is None and not 0.0 <= float(min_confidence) <= 1.0:
        raise ValueError(f"min_confidence must lie in [0, 1], got {min_confidence}")
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    if is_list:
        def scored(lab, sid):
            return _attr(lab, "vc_suggested_label"), _attr(lab, "vc_mislabel")
    else:
        sel = collection if ids is None else collection.select(list(ids))
        per_sample = {sid: (s, c) for sid, s, c in zip(
            *sel.values(["id", "vc_suggested_label", "vc_mislabel"]))}
        if ids is None:   # only the flagged samples are read again
            ids = [sid for sid, (_, c) in per_sample.items()
                   if c is not None and c >= min_confidence]
            if not ids:
                return {"changed": 0, "unchanged": 0, "sample_ids": []}

        def scored(lab, sid):
            return per_sample.get(sid, (None, None))
    unchanged = 0
    min_conf = min_confidence if (is_list and ids is None) else None

    def change(lab, sid):
        nonlocal unchanged
        s, c = scored(lab, sid)
        if min_conf is not None and (c is None or c < min_conf):
            return False
        if not s or s == lab.label:
            unchanged += 1
            return False
        if _attr(lab, PREVIOUS) is None:      # an earlier change keeps the original label
            lab[PREVIOUS] = lab.label
        lab[CHANGED_AT] = now
        lab.label = s
        tags = list(lab.tags or [])
        lab.tags = tags if RELABELED_TAG in tags else tags + [RELABELED_TAG]
        return True

    n, sample_ids = _edit(collection, path, is_list, change, ids=ids)
    return {"changed": n, "unchanged": unchanged, "sample_ids": sample_ids}


def undo_relabel(collection, label_field: str | None = None, *, ids: list[str] | None = None,
                 patches_field: str | None = None) -> int:
    """Restores every label of ``collection`` (or of ``ids``: samples in image view, labels in
    object view) changed by :func:`accept_suggestions` to its previous value, and removes
    ``vc_previous_label``, ``vc_relabeled_at`` and the ``vc_relabeled`` tag. Returns how many
    labels were restored.

    Example::

        vc.undo_relabel(dataset, "ground_truth")
    """
    path, is_list = _label_path(collection, label_field or patches_field, patches_field)

    def change(lab, sid):
        prev = _attr(lab, PREVIOUS)
        if prev is None:
            return False
        lab.label = prev
        for name in (PREVIOUS, CHANGED_AT):
            if _attr(lab, name) is not None or name in lab.to_dict():
                del lab[name]
        lab.tags = [t for t in (lab.tags or []) if t != RELABELED_TAG]
        return True

    return _edit(collection, path, is_list, change, ids=ids)[0]


def relabeled(collection, label_field: str | None = None, *, patches_field: str | None = None):
    """The samples of ``collection`` with a label changed by :func:`accept_suggestions` and not
    undone, as a view (in object view, only those labels)."""
    path, is_list = _label_path(collection, label_field or patches_field, patches_field)
    return collection.match_labels(tags=RELABELED_TAG, fields=path.split(".")[0])
