"""One sample's results, explained: what the sample modal shows next to the image.

:func:`explain_sample` gathers, for one sample of an analysed dataset, its issues (score, the
run's threshold, flagged or not, one line of reason each, in the words of the analyzer that
wrote the score), its duplicate group (every member, which one is kept and why, by the group's
keep rule), its cluster at each granularity with the cluster's size, and the label the
mislabels analysis suggests. App-free; the modal panel renders it.

Example::

    import visual_curation as vc
    from visual_curation.core.explain import explain_sample

    vc.analyze(dataset, label_field="ground_truth")
    info = explain_sample(dataset, dataset.first().id)
    info["issues"][0]["reason"], info["duplicates"], info["clusters"]
"""
from __future__ import annotations

from .analyzers import FIELD_SPECS, ISSUES, LEVELS
from .analyzers.duplicates import KEEP_RULE
from .review import review_state

PREFIX = "Visual Curation: "


def _describe(field: str) -> str:
    spec = FIELD_SPECS.get(field)
    text = spec.description if spec else field
    return text[len(PREFIX):] if text.startswith(PREFIX) else text


def _label_field(dataset) -> str | None:
    from . import runs as vcr
    from .analyze import analysis_run_key

    conf = vcr.load_config(dataset, analysis_run_key(None)) or {}
    return conf.get("label_field")


def _issue_reason(issue, sample, value, label_field):
    if issue == "mislabel":
        suggested = sample.get_field("vc_suggested_label") \
            if sample.has_field("vc_suggested_label") else None
        label = _label_of(sample, label_field)
        if suggested and label and suggested != label:
            return f"its nearest neighbours are mostly '{suggested}', not '{label}'"
    if issue == "duplicate" and value:
        return "a copy of another image of its group, which is the one kept"
    return _describe(ISSUES[issue].field)


def _label_of(sample, label_field):
    if not label_field or not sample.has_field(label_field):
        return None
    lab = sample.get_field(label_field)
    return getattr(lab, "label", None)


def _resolution(sample):
    md = sample.metadata
    w, h = (getattr(md, "width", None), getattr(md, "height", None)) if md else (None, None)
    if not (w and h):
        try:
            from PIL import Image

            with Image.open(sample.filepath) as im:
                w, h = im.size
        except Exception:  # noqa: BLE001 - unreadable: no resolution to show
            return None
    return int(w), int(h)


def duplicate_group(dataset, sample) -> dict | None:
    """``{"group", "members": [{"id", "filepath", "kept", "resolution"}], "kept", "why"}`` of
    the sample's duplicate group (kept member first), or None when it has no copy."""
    from fiftyone import ViewField as F

    if not dataset.has_sample_field("vc_dup_group"):
        return None
    gid = sample.get_field("vc_dup_group") if sample.has_field("vc_dup_group") else None
    if not gid:
        return None
    members = []
    for s in dataset.match(F("vc_dup_group") == gid).select_fields(
            ["vc_duplicate", "metadata"]):
        kept = not bool(s.get_field("vc_duplicate")) if s.has_field("vc_duplicate") else False
        members.append(dict(id=s.id, filepath=s.filepath, kept=kept,
                            resolution=_resolution(s)))
    if len(members) < 2:
        return None
    members.sort(key=lambda m: not m["kept"])
    kept = next((m for m in members if m["kept"]), None)
    why = f"kept by the group's rule: {KEEP_RULE}"
    if kept and kept["resolution"]:
        others = [m["resolution"] for m in members if not m["kept"] and m["resolution"]]
        area = kept["resolution"][0] * kept["resolution"][1]
        if others and all(area > w * h for w, h in others):
            why = (f"kept: the largest ({kept['resolution'][0]}×{kept['resolution'][1]}); "
                   f"the rule is {KEEP_RULE}")
        elif others and all(area == w * h for w, h in others):
            why = ("kept: all are the same size, so the sharpest (then the oldest) is kept; "
                   f"the rule is {KEEP_RULE}")
    return dict(group=gid, members=members, kept=kept["id"] if kept else None, why=why)


def explain_sample(dataset, sample_id: str) -> dict:
    """Everything the analyses say about one sample::

        {"id", "issues": [{"issue", "score", "threshold", "flagged", "reason"}],
         "duplicates": duplicate_group(...) or None,
         "clusters": [{"level", "cluster", "size"}],
         "suggestion": {"label_field", "label", "suggested", "confidence"} or None,
         "uniqueness": float or None}

    Issues are listed flagged first, then by score."""
    from fiftyone import ViewField as F

    dataset = dataset._dataset
    sample = dataset[sample_id]
    state = review_state(dataset)
    label_field = _label_field(dataset)
    flagged = set(sample.get_field("vc_issues") or []) if sample.has_field("vc_issues") else set()
    issues = []
    for name, st in state.items():
        field = ISSUES[name].field
        value = sample.get_field(field) if sample.has_field(field) else None
        if value is None:
            continue
        issues.append(dict(issue=name, score=value, threshold=st["threshold"],
                           flagged=name in flagged,
                           reason=_issue_reason(name, sample, value, label_field)))
    issues.sort(key=lambda i: (not i["flagged"], -float(i["score"] or 0)))
    clusters = []
    for k in range(1, LEVELS + 1):
        f = f"vc_cluster_{k}"
        if dataset.has_sample_field(f) and sample.get_field(f) is not None:
            cid = sample.get_field(f)
            clusters.append(dict(level=k, cluster=cid, size=len(dataset.match(F(f) == cid))))
    suggestion = None
    suggested = sample.get_field("vc_suggested_label") \
        if sample.has_field("vc_suggested_label") else None
    label = _label_of(sample, label_field)
    if suggested and label is not None and suggested != label:
        suggestion = dict(label_field=label_field, label=label, suggested=suggested,
                          confidence=sample.get_field("vc_mislabel")
                          if sample.has_field("vc_mislabel") else None)
    uniq = sample.get_field("vc_uniqueness") if sample.has_field("vc_uniqueness") else None
    return dict(id=sample.id, issues=issues, duplicates=duplicate_group(dataset, sample),
                clusters=clusters, suggestion=suggestion, uniqueness=uniq)
