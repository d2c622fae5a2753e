"""What the analysis stored, as the cluster panel reads it: the granularity levels, the per-level
cluster summaries of the analysis run (cached per run), which fields are analysed, what is
computed yet (:func:`status`) and where the labels shown on the cards live.

Everything reads what :func:`visual_curation.core.analyze` stored: the ``vc_cluster_1..5``
fields (sample fields, or detection attributes in object view) and the analysis run.
"""
from __future__ import annotations

from ..core.analyzers import LEVELS
from . import cache

DEFAULT_LEVEL = 1


def clamp_level(level):
    try:
        level = int(round(float(level)))
    except (TypeError, ValueError):
        level = DEFAULT_LEVEL
    return min(max(level, 1), LEVELS)


def list_path(dataset, patches_field):
    """``"ground_truth.detections"`` for a Detections field (where the attributes live)."""
    from ..core.fields import label_list_path

    return label_list_path(dataset, patches_field)


def item_prefix(view, patches_field=None):
    """``(pipeline that yields one document per item, path prefix of the item's values)``:
    the samples, or in object view the detections of ``patches_field`` (unwound)."""
    if not patches_field:
        return [], ""
    lp = list_path(view._dataset, patches_field)
    return [{"$unwind": "$" + lp}], lp + "."


#: the id of the card that gathers the items no cluster groups at a level
NOT_GROUPED = "not grouped"


def _stored_levels(dataset, patches_field=None):
    """``(summaries, level meta)`` of the last analysis, from one read of its record (cached
    per run)."""
    from ..core.analyze import analysis_run_key, cluster_summaries

    dataset = dataset._dataset
    key = analysis_run_key(patches_field)
    if key not in dataset.list_runs():
        return {}, {}

    def read():
        raw = cluster_summaries(dataset, patches_field)
        items = raw.items() if isinstance(raw, dict) else enumerate(raw, 1)
        meta = {int(k): {f: v[f] for f in ("similarity", "z", "name", "singletons",
                                             "first_single") if f in v}
                for k, v in items if isinstance(v, dict) and "similarity" in v}
        return parse_levels(raw), meta

    try:
        stamp = str(dataset.get_run_info(key).timestamp)
    except Exception:  # noqa: BLE001
        return read()
    return cache.cached(("levels", str(dataset._doc.id), key, stamp), read)


def summaries(dataset, patches_field=None):
    """``{level (int): [cluster summary, ...]}`` of the last analysis (cached per run)."""
    return _stored_levels(dataset, patches_field)[0]


def level_meta(dataset, patches_field=None):
    """``{level: {similarity, z, name, singletons, first_single}}`` of the last analysis (what
    each level means; single-item clusters have ids >= ``first_single``); ``{}`` for runs
    that did not store it."""
    return _stored_levels(dataset, patches_field)[1]


def level_words(meta):
    """The level's similarity in words, e.g. "similar: merged groups on average ≥ 0.46
    cosine (47 % of the way from this dataset's typical pair to identical)"."""
    if not meta:
        return ""
    return (f"{meta.get('name', '')}: merged groups on average ≥ {meta['similarity']:.2f} "
            f"cosine ({round(100 * meta.get('z', 0))} % of the way from this dataset's typical "
            "pair to identical)")


def run_stamp(dataset, patches_field=None):
    """When the last analysis (of this kind) ran, as a string ("" if never)."""
    from ..core.analyze import analysis_run_key

    ds = dataset._dataset
    key = analysis_run_key(patches_field)
    if key not in ds.list_runs():
        return ""
    try:
        return str(ds.get_run_info(key).timestamp)
    except Exception:  # noqa: BLE001
        return ""


def parse_levels(raw):
    """``{level (1..5): [cluster, ...]}`` from the stored summary, which may be a mapping
    ``{"1": [...]}`` or a list (level 1 first) whose items are cluster lists or
    ``{"clusters": [...], "n_clusters": ..., ...}`` dicts."""
    if not raw:
        return {}
    if isinstance(raw, dict):
        items = []
        for k, v in raw.items():
            try:
                items.append((int(k), v))
            except (TypeError, ValueError):
                continue
    else:
        items = list(enumerate(raw, 1))
    out = {}
    for lvl, v in items:
        if isinstance(v, dict) and "clusters" in v:
            v = v["clusters"]
        out[lvl] = list(normalise_clusters(v))
    return out


def normalise_clusters(clusters):
    """``{id, size, representatives, top_labels}`` dicts from a list of cluster dicts, or a
    ``{id: cluster}`` mapping."""
    if isinstance(clusters, dict):
        items = []
        for cid, c in clusters.items():
            c = dict(c or {})
            c.setdefault("id", cid)
            items.append(c)
        clusters = items
    for c in clusters or []:
        if not isinstance(c, dict):
            continue
        reps = c.get("representatives") or c.get("reps") or []
        labels = c.get("top_labels") or []
        if isinstance(labels, dict):
            labels = sorted(labels.items(), key=lambda kv: -kv[1])
        yield dict(id=c.get("id"), size=int(c.get("size") or 0),
                   representatives=[str(r) for r in reps],
                   top_labels=[[str(lab), int(n)] for lab, n in labels])


def cluster_key(cluster_id):
    """The form in which a cluster id is compared with the stored summaries' ids."""
    return str(cluster_id)


def stored_clusters(dataset, level, patches_field=None):
    """``{cluster key: summary}`` of one level of the stored summaries."""
    return {cluster_key(c["id"]): c
            for c in summaries(dataset, patches_field).get(clamp_level(level), [])}


def analysis_config(dataset, patches_field=None):
    from ..core import runs as vcr
    from ..core.analyze import analysis_run_key

    return vcr.load_config(dataset._dataset, analysis_run_key(patches_field)) or {}


def has_embeddings(dataset, patches_field=None):
    from ..core.similarity import embeddings_runs

    return bool(embeddings_runs(dataset, patches_field))


def detection_fields(dataset):
    from ..core.fields import detection_fields as fields

    return fields(dataset)


def analysed_patch_fields(dataset):
    """Detection fields that have an object-view analysis (cluster summaries)."""
    from ..core.analyze import analysis_run_key

    ds = dataset._dataset
    runs = set(ds.list_runs())
    return [f for f in detection_fields(ds) if analysis_run_key(f) in runs]


def status(view, patches_field=None):
    """What is computed: ``"ready"`` (clusters stored), ``"embeddings"`` (embeddings but no
    analysis yet) or ``"none"``; with the message the panel shows when not ready."""
    ds = view._dataset
    if summaries(ds, patches_field) and (patches_field or ds.has_sample_field("vc_cluster_1")):
        return "ready", None
    target = f" of the objects in '{patches_field}'" if patches_field else ""
    if has_embeddings(ds, patches_field):
        return "embeddings", (
            f"Embeddings{target} are computed but not analysed yet: run "
            f"**Visual Curation: run analyses**{' (Object view)' if patches_field else ''} "
            "to build the clusters.")
    return "none", (
        f"Nothing computed yet{target}. Run **Visual Curation: compute embeddings** first, "
        f"then **Visual Curation: run analyses**{' (both in Object view)' if patches_field else ''}.")


def label_path(dataset, patches_field=None, label_field=None):
    """Where the class labels shown on the cards live (None: use the stored top labels)."""
    import fiftyone.core.labels as fol

    ds = dataset._dataset
    if patches_field:
        return f"{list_path(ds, patches_field)}.label"
    label_field = label_field or analysis_config(ds).get("label_field")
    if not label_field:
        return None
    try:
        doc = getattr(ds.get_field(label_field), "document_type", None)
    except Exception:  # noqa: BLE001
        return None
    if doc is not None and issubclass(doc, fol.Classification):
        return f"{label_field}.label"
    return None
