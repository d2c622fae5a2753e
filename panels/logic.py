"""What the cluster panel shows, as plain functions of a FiftyOne view (no App code here).

The panel (:mod:`.clusters`) calls these and only turns their dicts into App components, so the
logic is testable without a browser. Everything reads what :func:`visual_curation.core.analyze`
stored: the ``vc_cluster_1..5`` fields (sample fields, or detection attributes in object view),
``vc_uniqueness``, ``vc_issues`` and the per-level cluster summaries of the analysis run. Counts
are MongoDB aggregations over the given view (so the App's sidebar filters apply); nothing loops
over samples in Python, and nothing is recomputed when the granularity changes.
"""
from __future__ import annotations

import hashlib
import logging
import math
import os
import threading
import time
import urllib.parse
from collections import OrderedDict

from bson import ObjectId

from ..core.analyzers import ISSUES, LEVELS

logger = logging.getLogger(__name__)

DEFAULT_LEVEL = 1
PAGE_SIZE = 24
N_THUMBS = 6
# sort key -> label shown in the App
SORTS = OrderedDict([
    ("size", "Largest first"),
    ("uniqueness", "Most unique first"),
    ("redundancy", "Most redundant first"),
    ("issues", "Most issues first"),
])
ISSUE_TYPES = tuple(ISSUES)
HIST_BINS = 20
THUMB_SIZE = 96
ENV_THUMBS = "VISUAL_CURATION_THUMBS_DIR"
MAX_SIMILAR = 1000


# --------------------------------------------------------------------------------------------
# paths and stored results


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


def item_path(dataset, name, patches_field=None):
    """The path of a ``vc_`` value: a sample field, or a detection attribute in object view."""
    if not patches_field:
        return name
    return f"{list_path(dataset, patches_field)}.{name}"


def cluster_path(dataset, level, patches_field=None):
    return item_path(dataset, f"vc_cluster_{clamp_level(level)}", patches_field)


def source_collection(view):
    """The collection the panel reads: a patches/frames/clips view is replaced by the
    collection it was generated from (the ``vc_`` fields live there)."""
    seen = 0
    while getattr(view, "_is_generated", False) and seen < 5:
        src = getattr(view, "_source_collection", None)
        if src is None:
            break
        view = src
        seen += 1
    return view


_SUMMARY_CACHE = OrderedDict()
_SUMMARY_LOCK = threading.Lock()


def summaries(dataset, patches_field=None):
    """``{level (int): [cluster summary, ...]}`` of the last analysis (cached per run)."""
    from ..core.analyze import analysis_run_key, cluster_summaries

    dataset = dataset._dataset
    key = analysis_run_key(patches_field)
    if key not in dataset.list_runs():
        return {}
    try:
        stamp = str(dataset.get_run_info(key).timestamp)
    except Exception:  # noqa: BLE001
        stamp = None
    ck = (str(dataset._doc.id), key, stamp)
    with _SUMMARY_LOCK:
        if stamp is not None and ck in _SUMMARY_CACHE:
            _SUMMARY_CACHE.move_to_end(ck)
            return _SUMMARY_CACHE[ck]
    out = parse_levels(cluster_summaries(dataset, patches_field))
    if stamp is not None:
        with _SUMMARY_LOCK:
            _SUMMARY_CACHE[ck] = out
            while len(_SUMMARY_CACHE) > 16:
                _SUMMARY_CACHE.popitem(last=False)
    return out


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
        out[lvl] = list(_normalise_clusters(v))
    return out


def data_version(dataset):
    """A cheap fingerprint of the samples' state: ``(number of samples, latest
    last_modified_at)`` (index lookups, ~1 ms). Any added, deleted, edited or tagged sample
    changes it, so cached aggregates keyed on it are never stale."""
    coll = dataset._dataset._sample_collection
    try:
        n = coll.estimated_document_count()
        last = next(iter(coll.find({}, {"last_modified_at": 1})
                         .sort("last_modified_at", -1).limit(1)), {})
        return (n, str(last.get("last_modified_at")))
    except Exception:  # noqa: BLE001
        return (None, time.time())  # unknown: never reuse


def _normalise_clusters(clusters):
    """Accepts a list of cluster dicts, or a ``{id: cluster}`` mapping."""
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
    ds = dataset._dataset
    runs = set(ds.list_runs())
    from ..core.analyze import analysis_run_key

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


# --------------------------------------------------------------------------------------------
# health


def _prefix(view, patches_field):
    """``(pipeline that yields one document per item, path prefix of the item's values)``."""
    if not patches_field:
        return [], ""
    lp = list_path(view._dataset, patches_field)
    return [{"$unwind": "$" + lp}], lp + "."


def _nonempty(expr):
    return {"$cond": [{"$gt": [{"$size": {"$ifNull": [expr, []]}}, 0]}, 1, 0]}


def _health_facets():
    """``$facet`` branches over documents ``{i: issues list, u: uniqueness}``."""
    edges = [i / HIST_BINS for i in range(HIST_BINS + 1)]
    return {
        "tot": [{"$group": {"_id": None, "n": {"$sum": 1},
                            "w": {"$sum": _nonempty("$i")},
                            "hi": {"$sum": {"$cond": [{"$isArray": "$i"}, 1, 0]}},
                            "u": {"$avg": "$u"}}}],
        "iss": [{"$unwind": "$i"}, {"$group": {"_id": "$i", "n": {"$sum": 1}}}],
        "hist": [{"$match": {"u": {"$type": "number"}}},
                 {"$bucket": {"groupBy": "$u", "boundaries": edges[:-1] + [1.0 + 1e-9],
                              "default": "other", "output": {"n": {"$sum": 1}}}}],
    }


def _parse_health(res, patches_field):
    edges = [i / HIST_BINS for i in range(HIST_BINS + 1)]
    tot = res.get("tot") or [{}]
    tot = tot[0] if tot else {}
    issues, with_issues = None, None
    if tot.get("hi"):
        issues = {k: 0 for k in ISSUE_TYPES}
        for d in res.get("iss") or []:
            if d["_id"] is not None:
                issues[str(d["_id"])] = int(d["n"])
        with_issues = int(tot.get("w") or 0)
    uniq = None
    if tot.get("u") is not None:
        counts = [0] * HIST_BINS
        for d in res.get("hist") or []:
            if d["_id"] != "other":
                j = min(int(round(float(d["_id"]) * HIST_BINS)), HIST_BINS - 1)
                counts[j] += int(d["n"])
        uniq = dict(counts=counts, edges=edges, mean=float(tot["u"]))
    return dict(items=int(tot.get("n") or 0), issues=issues, with_issues=with_issues,
                uniqueness=uniq, kind="objects" if patches_field else "images")


def health(view, patches_field=None):
    """Dataset health of the view: items, counts per issue type (``vc_issues`` lists
    unwound, as ``count_values("vc_issues")`` does), items with any issue, and the uniqueness
    histogram/mean. One scan (a ``$facet`` aggregation); works whether or not the detection
    attributes are declared in the schema."""
    pre_pipe, pre = _prefix(view, patches_field)
    pipe = pre_pipe + [
        {"$project": {"i": "$" + pre + "vc_issues", "u": "$" + pre + "vc_uniqueness"}},
        {"$facet": _health_facets()},
    ]
    res = list(view._aggregate(pipeline=pipe))
    return _parse_health(res[0] if res else {}, patches_field)


# --------------------------------------------------------------------------------------------
# cards


def _key(x):
    return str(x)


def level_stats(view, level, patches_field=None, with_health=False):
    """What the cards of one granularity need from the view, in ONE scan: per cluster the
    number of items in the view (a ``$group`` on ``vc_cluster_<level>``, like
    ``count_values``), their mean uniqueness and how many have issues; with ``with_health``,
    also :func:`health` of the view (same scan, ``$facet``).

    Returns:
        ``{"clusters": {cluster id: (items, mean uniqueness, items with issues)},
        "health": dict or None}``
    """
    out = levels_stats(view, [level], patches_field, with_health=with_health)
    return out[clamp_level(level)]


def levels_stats(view, levels, patches_field=None, with_health=False):
    """:func:`level_stats` of several levels in one scan: ``{level: stats}``."""
    levels = sorted({clamp_level(lv) for lv in levels})
    pre_pipe, pre = _prefix(view, patches_field)
    proj = {"u": f"${pre}vc_uniqueness", "w": _nonempty(f"${pre}vc_issues")}
    if with_health:
        proj["i"] = f"${pre}vc_issues"
    for lv in levels:
        proj[f"c{lv}"] = f"${pre}vc_cluster_{lv}"

    def group(lv):
        return {"$group": {"_id": f"$c{lv}", "n": {"$sum": 1}, "u": {"$avg": "$u"},
                           "i": {"$sum": "$w"}}}

    if len(levels) == 1 and not with_health:
        docs = {levels[0]: list(view._aggregate(pipeline=pre_pipe + [
            {"$project": proj}, group(levels[0])]))}
        res = {}
    else:
        facets = {f"s{lv}": [group(lv)] for lv in levels}
        if with_health:
            facets.update(_health_facets())
        res = list(view._aggregate(pipeline=pre_pipe + [{"$project": proj},
                                                        {"$facet": facets}]))
        res = res[0] if res else {}
        docs = {lv: res.get(f"s{lv}") or [] for lv in levels}
    health_ = _parse_health(res, patches_field) if with_health else None
    return {lv: dict(clusters={d["_id"]: (int(d["n"]), d.get("u"), int(d.get("i") or 0))
                               for d in docs[lv] if d["_id"] is not None},
                     health=health_)
            for lv in levels}


def page_labels(view, level, cluster_ids, patches_field=None, top=3):
    """``{cluster id: [[label, count], ...]}``: the ``top`` most frequent labels of the given
    clusters' items in the view (one scan), or None when there is no label field."""
    ds = view._dataset
    lpath = label_path(ds, patches_field)
    if not lpath:
        return None
    if not cluster_ids:
        return {}
    pre_pipe, pre = _prefix(view, patches_field)
    cp = f"{pre}vc_cluster_{clamp_level(level)}"
    pipe = pre_pipe + [
        {"$match": {cp: {"$in": list(cluster_ids)}}},
        {"$group": {"_id": {"c": "$" + cp, "l": "$" + lpath}, "n": {"$sum": 1}}},
    ]
    out = {}
    for d in view._aggregate(pipeline=pipe):
        lab = d["_id"].get("l")
        if lab is not None:
            out.setdefault(d["_id"].get("c"), []).append([str(lab), int(d["n"])])
    return {c: sorted(v, key=lambda x: (-x[1], x[0]))[:top] for c, v in out.items()}


def is_whole(view):
    """Whether the view is the whole dataset (no stages, no sidebar filters)."""
    return not serialize_view(view)


def build_cards(view, level=DEFAULT_LEVEL, sort="size", page=0, patches_field=None,
                page_size=PAGE_SIZE, n_thumbs=N_THUMBS, thumbnails=True, stored=None,
                stats=None):
    """The cards of one page of the cluster grid.

    Args:
        view: the App's current view (sidebar filters included); counts match it
        level: granularity 1 (loosest) … 5 (strictest)
        sort: one of :data:`SORTS`
        page: 0-based page
        patches_field: object view: the Detections field analysed with ``patches_field``
        thumbnails: resolve thumbnail URLs (crops are written to the thumbnail cache)
        stored: the stored summaries (default: read from the dataset's analysis run)
        stats: :func:`level_stats` of this view and level, if already computed

    Labels: the stored top labels of each cluster when the view is the whole dataset, else
    counted over the view.

    Returns:
        a dict: ``level, sort, page, pages, page_size, clusters`` (clusters with items in the
        view), ``items`` (clustered items in the view), ``stored_clusters`` (at this level, in
        the whole dataset) and ``cards``: ``[{id, count, size, labels, uniqueness, issues,
        thumbs: [{id, url, filepath}], representatives}]``
    """
    ds = view._dataset
    level = clamp_level(level)
    sort = sort if sort in SORTS else "size"
    stored = summaries(ds, patches_field) if stored is None else stored
    by_id = {_key(c["id"]): c for c in stored.get(level, [])}
    stats = level_stats(view, level, patches_field) if stats is None else stats
    per = stats["clusters"]
    rows = [(c, st[0]) for c, st in per.items() if c is not None and st[0]]
    if sort == "size":
        rows.sort(key=lambda r: (-r[1], _sortable(r[0])))
    elif sort in ("uniqueness", "redundancy"):
        sign = -1.0 if sort == "uniqueness" else 1.0

        def ukey(r):
            u = per[r[0]][1]
            return (u is None, sign * (u or 0.0), -r[1], _sortable(r[0]))

        rows.sort(key=ukey)
    else:  # issues
        rows.sort(key=lambda r: (-per[r[0]][2], -r[1], _sortable(r[0])))

    n_clusters = len(rows)
    page_size = max(1, int(page_size))
    pages = max(1, math.ceil(n_clusters / page_size))
    page = min(max(int(page or 0), 0), pages - 1)
    chunk = rows[page * page_size:(page + 1) * page_size]
    # labels: on the whole dataset the analysis stored them per cluster; on a filtered view
    # they are counted over the view (one scan over the page's clusters)
    labels = None
    if not is_whole(view) or any(not by_id.get(_key(c), {}).get("top_labels") for c, _ in chunk):
        labels = page_labels(view, level, [c for c, _ in chunk], patches_field)

    cards = []
    for cid, n in chunk:
        s = by_id.get(_key(cid), {})
        st = per.get(cid)
        cards.append(dict(
            id=cid, count=n, size=int(s.get("size") or 0),
            labels=(labels.get(cid) or []) if labels is not None
            else list(s.get("top_labels") or [])[:3],
            uniqueness=None if not st or st[1] is None else round(float(st[1]), 3),
            issues=0 if not st else st[2],
            representatives=list(s.get("representatives") or []),
            thumbs=[]))
    if thumbnails and cards:
        attach_thumbnails(view, cards, level, patches_field, n_thumbs)
    return dict(level=level, sort=sort, page=page, pages=pages, page_size=page_size,
                clusters=n_clusters, items=int(sum(n for _, n in rows)),
                stored_clusters=len(stored.get(level, [])),
                kind="objects" if patches_field else "images",
                patches_field=patches_field, cards=cards)


def _sortable(x):
    return (0, x, "") if isinstance(x, (int, float)) else (1, 0, str(x))


# --------------------------------------------------------------------------------------------
# thumbnails


def media_url(filepath):
    """The App server's URL for a local file."""
    return "/media?filepath=" + urllib.parse.quote(str(filepath), safe="")


def thumbs_dir(dataset):
    from ..core import config as cfg

    root = os.environ.get(ENV_THUMBS) or os.path.join(
        cfg.fiftyone_config_dir(), "visual_curation", "thumbs")
    return os.path.join(root, str(dataset._dataset._doc.id))


def crop_thumbnail(dataset, filepath, box, label_id, size=THUMB_SIZE, pad=0.08):
    """A small JPEG of the (slightly padded) box ``[x, y, w, h]`` (relative) of ``filepath``,
    written once to the thumbnail cache; returns its path (None if the image is unreadable)."""
    x, y, w, h = (float(v) for v in box)
    sig = hashlib.sha1(f"{filepath}|{x:.5f},{y:.5f},{w:.5f},{h:.5f}|{size}".encode()).hexdigest()[:10]
    out_dir = thumbs_dir(dataset)
    out = os.path.join(out_dir, f"{label_id}_{sig}.jpg")
    if os.path.exists(out):
        return out
    from PIL import Image

    try:
        with Image.open(filepath) as im:
            im = im.convert("RGB")
            W, H = im.size
            px, py = pad * w, pad * h
            left = max(0, int(math.floor((x - px) * W)))
            top = max(0, int(math.floor((y - py) * H)))
            right = min(W, int(math.ceil((x + w + px) * W)))
            bottom = min(H, int(math.ceil((y + h + py) * H)))
            if right <= left or bottom <= top:
                return None
            crop = im.crop((left, top, right, bottom))
            scale = size / max(crop.size)
            if scale > 1:  # upscale tiny crops so that they are visible
                crop = crop.resize((max(1, round(crop.width * scale)),
                                    max(1, round(crop.height * scale))), Image.NEAREST)
            else:
                crop.thumbnail((size, size))
            os.makedirs(out_dir, exist_ok=True)
            tmp = f"{out}.{os.getpid()}.{threading.get_ident()}.tmp"
            crop.save(tmp, "JPEG", quality=88)
            os.replace(tmp, out)
    except Exception as e:  # noqa: BLE001 - a broken image must not break the panel
        logger.warning("cluster panel: cannot crop %s: %s", filepath, e)
        return None
    return out


def _oids(ids):
    out = []
    for i in ids:
        try:
            out.append(ObjectId(str(i)))
        except Exception:  # noqa: BLE001
            pass
    return out


def attach_thumbnails(view, cards, level, patches_field=None, n_thumbs=N_THUMBS):
    """Fills ``card["thumbs"]`` with up to ``n_thumbs`` representatives that are in the view
    (nearest to the centroid first); clusters whose stored representatives are all filtered
    out of the view get their first items in the view instead."""
    ds = view._dataset
    want = {}
    for c in cards:
        want[_key(c["id"])] = c["representatives"][: max(n_thumbs * 2, n_thumbs)]
    all_ids = [i for ids in want.values() for i in ids]
    found = _lookup(view, all_ids, patches_field)  # id -> (filepath, box or None)
    missing = []
    for c in cards:
        thumbs = [i for i in want[_key(c["id"])] if i in found][:n_thumbs]
        if not thumbs:
            missing.append(c)
        c["thumbs"] = [_thumb(ds, i, *found[i], patches_field) for i in thumbs]
    if missing:
        extra = _first_items_many(view, level, [c["id"] for c in missing], patches_field,
                                  n_thumbs)
        for c in missing:
            c["thumbs"] = [_thumb(ds, i, fp, box, patches_field)
                           for i, fp, box in extra.get(c["id"], [])]
    for c in cards:
        c["thumbs"] = [t for t in c["thumbs"] if t["url"]]


def _thumb(ds, item_id, filepath, box, patches_field):
    if patches_field and box is not None:
        path = crop_thumbnail(ds, filepath, box, item_id)
        if path is None:
            return dict(id=item_id, filepath=filepath, url=None)
        return dict(id=item_id, filepath=filepath, url=media_url(path), crop=path)
    return dict(id=item_id, filepath=filepath, url=media_url(filepath))


def _lookup(view, ids, patches_field=None):
    if not ids:
        return {}
    oids = _oids(ids)
    if not patches_field:
        pipe = [{"$match": {"_id": {"$in": oids}}}, {"$project": {"filepath": 1}}]
        return {str(d["_id"]): (d["filepath"], None) for d in view._aggregate(pipeline=pipe)}
    lp = list_path(view._dataset, patches_field)
    pipe = [
        {"$match": {lp + "._id": {"$in": oids}}},
        {"$project": {"filepath": 1, "d": {"$filter": {
            "input": "$" + lp, "as": "d", "cond": {"$in": ["$$d._id", oids]}}}}},
    ]
    out = {}
    for doc in view._aggregate(pipeline=pipe):
        for d in doc.get("d") or []:
            out[str(d["_id"])] = (doc["filepath"], d.get("bounding_box"))
    return out


def _first_items_many(view, level, cluster_ids, patches_field, n):
    """``{cluster id: [(item id, filepath, box), ...]}``: the first ``n`` items in the view of
    each given cluster (clusters that the stored summary does not list, or whose
    representatives are all filtered out), in one scan."""
    if not cluster_ids:
        return {}
    pre_pipe, pre = _prefix(view, patches_field)
    cp = f"{pre}vc_cluster_{clamp_level(level)}"
    item = {"i": "$" + (pre + "_id" if patches_field else "_id"), "f": "$filepath"}
    if patches_field:
        item["b"] = "$" + pre + "bounding_box"
    head = pre_pipe + [{"$match": {cp: {"$in": list(cluster_ids)}}}]
    try:
        docs = list(view._aggregate(pipeline=head + [
            {"$group": {"_id": "$" + cp, "x": {"$firstN": {"input": item, "n": int(n)}}}}]))
    except Exception:  # noqa: BLE001 - MongoDB < 5.2 has no $firstN
        docs = list(view._aggregate(pipeline=head + [
            {"$group": {"_id": "$" + cp, "x": {"$push": item}}},
            {"$project": {"x": {"$slice": ["$x", int(n)]}}}]))
    return {d["_id"]: [(str(x["i"]), x["f"], x.get("b")) for x in d.get("x") or []]
            for d in docs}


# --------------------------------------------------------------------------------------------
# actions


def cluster_view(view, level, cluster_id, patches_field=None):
    """The items of one cluster in ``view`` (its filters kept): samples, or the patches of the
    cluster's objects in object view."""
    from fiftyone import ViewField as F

    level = clamp_level(level)
    name = f"vc_cluster_{level}"
    if patches_field:
        return view.filter_labels(patches_field, F(name) == cluster_id).to_patches(patches_field)
    return view.match(F(name) == cluster_id)


def tag_cluster(view, level, cluster_id, tag, patches_field=None):
    """Tags the cluster's samples (its objects in object view); returns how many were tagged."""
    from fiftyone import ViewField as F

    level = clamp_level(level)
    name = f"vc_cluster_{level}"
    if patches_field:
        sub = view.filter_labels(patches_field, F(name) == cluster_id)
        n = sub.count(f"{list_path(view._dataset, patches_field)}")
        sub.tag_labels(tag, label_fields=[patches_field])
        return n
    sub = view.match(F(name) == cluster_id)
    n = len(sub)
    sub.tag_samples(tag)
    return n


def default_tag(level, cluster_id):
    return f"cluster_L{clamp_level(level)}_{cluster_id}"


def similar_view(view, level, cluster_id, patches_field=None, k=None, count=None):
    """The ``k`` items of ``view`` nearest to the cluster's members (the mean of its stored
    representatives, i.e. about its centroid), nearest first. ``k`` defaults to twice the
    cluster's size in the view (at least 50, at most 1000)."""
    from ..core.similarity import find_similar

    level = clamp_level(level)
    stored = {_key(c["id"]): c for c in summaries(view._dataset, patches_field).get(level, [])}
    reps = (stored.get(_key(cluster_id)) or {}).get("representatives") or []
    if not reps:
        first = _first_items_many(view, level, [cluster_id], patches_field, N_THUMBS)
        reps = [i for i, _, _ in first.get(cluster_id, [])]
    if not reps:
        raise ValueError(f"Cluster {cluster_id} has no items in this view")
    if k is None:
        count = count if count is not None else len(reps)
        k = min(max(50, 2 * int(count)), MAX_SIMILAR)
    return find_similar(view, sample_id=reps, k=int(k), patches_field=patches_field)


def serialize_view(view, include_uuids=True):
    """The stage list of a view (``[]`` for a whole dataset)."""
    import fiftyone.core.view as fov

    if isinstance(view, fov.DatasetView):
        return view._serialize(include_uuids=include_uuids)
    return []


def view_key(view):
    """A hashable description of a view (dataset + stages, without stage uuids)."""
    import json

    return (view._dataset.name,
            json.dumps(serialize_view(view, include_uuids=False), sort_keys=True, default=str))


def stage_signature(stages):
    """A comparable form of a serialized view (list of stage dicts), ignoring stage uuids."""
    import json

    out = []
    for s in stages or []:
        if isinstance(s, dict):
            out.append(json.dumps([s.get("_cls"), s.get("kwargs")], sort_keys=True, default=str))
        else:
            out.append(str(s))
    return out


# --------------------------------------------------------------------------------------------
# core frames of videos


def source_video_params(dataset, card, patches_field=None):
    """The ``open_source_video`` params of a card of a core-frames dataset (its first
    thumbnail's frame), or None: not core frames, object view, or no thumbnail."""
    from ..core.video import is_core_frames

    thumbs = card.get("thumbs") or []
    if patches_field or not thumbs or not is_core_frames(dataset):
        return None
    return {"frame_id": thumbs[0]["id"]}
