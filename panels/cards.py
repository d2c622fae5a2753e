"""The cluster cards: one page of the grid of clusters of the App's view, sorted and paged, each
card with its item count in the view, stored size, prominent labels, mean uniqueness, items with
issues, representatives and thumbnails."""
from __future__ import annotations

import math
from collections import OrderedDict

from .statistics import level_stats
from .stored import (DEFAULT_LEVEL, NOT_GROUPED, clamp_level, cluster_key, item_prefix,
                     label_path, level_meta, level_words, summaries)
from .thumbnails import N_THUMBS, attach_thumbnails, first_items, thumb
from ..core.views import is_whole

PAGE_SIZE = 12
# sort key -> label shown in the App
SORTS = OrderedDict([
    ("size", "Largest first"),
    ("uniqueness", "Most unique first"),
    ("redundancy", "Most redundant first"),
    ("issues", "Most issues first"),
])


def page_labels(view, level, cluster_ids, patches_field=None, top=3):
    """``{cluster id: [[label, count], ...]}``: the ``top`` most frequent labels of the given
    clusters' items in the view (one scan), or None when there is no label field."""
    ds = view._dataset
    lpath = label_path(ds, patches_field)
    if not lpath:
        return None
    if not cluster_ids:
        return {}
    pre_pipe, pre = item_prefix(view, patches_field)
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
        stats: :func:`.statistics.level_stats` of this view and level, if already computed

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
    by_id = {cluster_key(c["id"]): c for c in stored.get(level, [])}
    stats = level_stats(view, level, patches_field) if stats is None else stats
    per = stats["clusters"]
    rows = [(c, st[0]) for c, st in per.items() if c is not None and st[0]]
    # single-item clusters (ids from the level's first_single) gather in one card at the end
    meta = level_meta(ds, patches_field).get(level, {})
    first = meta.get("first_single")
    singles = [] if first is None else [
        r for r in rows if isinstance(r[0], (int, float)) and r[0] >= first and r[1] == 1]
    if singles:
        ids = {r[0] for r in singles}
        rows = [r for r in rows if r[0] not in ids]
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
    # the "not grouped" card takes the place after the last cluster
    pages = max(1, math.ceil((n_clusters + bool(singles)) / page_size))
    page = min(max(int(page or 0), 0), pages - 1)
    chunk = rows[page * page_size:(page + 1) * page_size]
    last = singles and page == pages - 1
    # labels: on the whole dataset the analysis stored them per cluster; on a filtered view
    # they are counted over the view (one scan over the page's clusters)
    labels = None
    if not is_whole(view) or any(not by_id.get(cluster_key(c), {}).get("top_labels")
                                 for c, _ in chunk):
        labels = page_labels(view, level, [c for c, _ in chunk], patches_field)

    cards = []
    for cid, n in chunk:
        s = by_id.get(cluster_key(cid), {})
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
    if last:
        u = [per[c][1] for c, _ in singles if per[c][1] is not None]
        loose = dict(id=NOT_GROUPED, count=len(singles), size=0, labels=[],
                     uniqueness=round(float(sum(u) / len(u)), 3) if u else None,
                     issues=int(sum(per[c][2] for c, _ in singles)), representatives=[],
                     thumbs=[], not_grouped=True)
        if thumbnails:
            got = first_items(view, level, [c for c, _ in singles[:n_thumbs]], patches_field, 1)
            loose["thumbs"] = [t for t in (thumb(ds, i, fp, box, patches_field)
                                           for x in got.values() for i, fp, box in x) if t["url"]]
        cards.append(loose)
    return dict(level=level, sort=sort, page=page, pages=pages, page_size=page_size,
                clusters=n_clusters, items=int(sum(n for _, n in rows)) + len(singles),
                not_grouped=len(singles), meaning=level_words(meta),
                level_name=meta.get("name"), similarity=meta.get("similarity"),
                stored_clusters=len(stored.get(level, [])),
                kind="objects" if patches_field else "images",
                patches_field=patches_field, cards=cards)


def _sortable(x):
    return (0, x, "") if isinstance(x, (int, float)) else (1, 0, str(x))
