"""What the buttons of a cluster card do: **Show** (the cluster's items in the grid), **Tag**,
**Similar** (the nearest items to the cluster), **Fix labels** (the accept-suggestions form for
the card's flagged mislabels) and, on the core frames of videos, **Video** (the source video of
the card's first thumbnail)."""
from __future__ import annotations

from .stored import (NOT_GROUPED, clamp_level, cluster_key, level_meta, list_path,
                     stored_clusters)
from .thumbnails import N_THUMBS, first_items

MAX_SIMILAR = 1000


def member_filter(view, level, cluster_id, patches_field=None):
    """The expression that selects one cluster's items (``NOT_GROUPED``: the single-item
    clusters of the level)."""
    from fiftyone import ViewField as F

    level = clamp_level(level)
    name = f"vc_cluster_{level}"
    if cluster_id == NOT_GROUPED:
        first = level_meta(view._dataset, patches_field).get(level, {}).get("first_single")
        return F(name) >= (first if first is not None else 2 ** 62)
    return F(name) == cluster_id


def cluster_view(view, level, cluster_id, patches_field=None):
    """The items of one cluster in ``view`` (its filters kept): samples, or the patches of the
    cluster's objects in object view."""
    expr = member_filter(view, level, cluster_id, patches_field)
    if patches_field:
        return view.filter_labels(patches_field, expr).to_patches(patches_field)
    return view.match(expr)


def tag_cluster(view, level, cluster_id, tag, patches_field=None):
    """Tags the cluster's samples (its objects in object view); returns how many were tagged."""
    expr = member_filter(view, level, cluster_id, patches_field)
    if patches_field:
        sub = view.filter_labels(patches_field, expr)
        n = sub.count(f"{list_path(view._dataset, patches_field)}")
        sub.tag_labels(tag, label_fields=[patches_field])
        return n
    sub = view.match(expr)
    n = len(sub)
    sub.tag_samples(tag)
    return n


def default_tag(level, cluster_id):
    if cluster_id == NOT_GROUPED:
        return f"not_grouped_L{clamp_level(level)}"
    return f"cluster_L{clamp_level(level)}_{cluster_id}"


def similar_view(view, level, cluster_id, patches_field=None, k=None, count=None, onto=None):
    """The ``k`` items of ``view`` nearest to the cluster's members (the mean of its stored
    representatives, i.e. about its centroid), nearest first. ``k`` defaults to twice the
    cluster's size in the view (at least 50, at most 1000). ``onto``: the view the result is
    built on (default ``view``), e.g. the App's stages without the sidebar filters that
    ``view`` has."""
    from ..core.similarity import similar_ids

    level = clamp_level(level)
    stored = stored_clusters(view._dataset, level, patches_field)
    reps = (stored.get(cluster_key(cluster_id)) or {}).get("representatives") or []
    if not reps:
        first = first_items(view, level, [cluster_id], patches_field, N_THUMBS)
        reps = [i for i, _, _ in first.get(cluster_id, [])]
    if not reps:
        raise ValueError(f"Cluster {cluster_id} has no items in this view")
    if k is None:
        count = count if count is not None else len(reps)
        k = min(max(50, 2 * int(count)), MAX_SIMILAR)
    ids = [i for i, _ in similar_ids(view, sample_id=reps, k=int(k), patches_field=patches_field)]
    onto = view if onto is None else onto
    if patches_field:  # a patch's id is its object's id
        return onto.to_patches(patches_field).select(ids, ordered=True)
    return onto.select(ids, ordered=True)


def source_video_params(dataset, card, patches_field=None):
    """The ``open_source_video`` params of a card of a core-frames dataset (its first
    thumbnail's frame), or None: not core frames, object view, or no thumbnail."""
    from ..core.video import is_core_frames

    thumbs = card.get("thumbs") or []
    if patches_field or not thumbs or not is_core_frames(dataset):
        return None
    return {"frame_id": thumbs[0]["id"]}


def fix_labels_params(dataset, patches_field=None):
    """The ``accept_suggestions`` params of the cards' **Fix labels** button (the card adds its
    cluster), or None when no mislabels analysis ran in this view kind."""
    if patches_field:
        path = f"{list_path(dataset, patches_field)}.vc_suggested_label"
        if not dataset.has_field(path) and not dataset.count(path):
            return None
        return {"kind": "objects", "patches_field": patches_field, "scope": "view"}
    if not dataset.has_sample_field("vc_suggested_label"):
        return None
    return {"kind": "images", "scope": "view"}
