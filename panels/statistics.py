"""The numbers of the cluster panel, as MongoDB aggregations over the App's view (so the sidebar
filters apply; nothing loops over samples in Python, nothing is recomputed when the granularity
changes): the dataset health summary (items, counts per issue type, items with issues, the
uniqueness histogram) and, per granularity level, each cluster's item count, mean uniqueness and
items with issues. :func:`view_stats` is what the panel calls: cached, one scan on a miss.
"""
from __future__ import annotations

from ..core.analyzers import ISSUES, LEVELS
from . import cache
from .stored import clamp_level, item_prefix

ISSUE_TYPES = tuple(ISSUES)
HIST_BINS = 20


def nonempty(expr):
    """An aggregation expression: 1 where the list ``expr`` is non-empty, else 0."""
    return {"$cond": [{"$gt": [{"$size": {"$ifNull": [expr, []]}}, 0]}, 1, 0]}


def health_facets():
    """``$facet`` branches over documents ``{i: issues list, u: uniqueness}``."""
    edges = [i / HIST_BINS for i in range(HIST_BINS + 1)]
    return {
        "tot": [{"$group": {"_id": None, "n": {"$sum": 1},
                            "w": {"$sum": nonempty("$i")},
                            "hi": {"$sum": {"$cond": [{"$isArray": "$i"}, 1, 0]}},
                            "u": {"$avg": "$u"}}}],
        "iss": [{"$unwind": "$i"}, {"$group": {"_id": "$i", "n": {"$sum": 1}}}],
        "hist": [{"$match": {"u": {"$type": "number"}}},
                 {"$bucket": {"groupBy": "$u", "boundaries": edges[:-1] + [1.0 + 1e-9],
                              "default": "other", "output": {"n": {"$sum": 1}}}}],
    }


def parse_health(res, patches_field):
    """The health dict of the result of the :func:`health_facets` branches."""
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
    pre_pipe, pre = item_prefix(view, patches_field)
    pipe = pre_pipe + [
        {"$project": {"i": "$" + pre + "vc_issues", "u": "$" + pre + "vc_uniqueness"}},
        {"$facet": health_facets()},
    ]
    res = list(view._aggregate(pipeline=pipe))
    return parse_health(res[0] if res else {}, patches_field)


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
    pre_pipe, pre = item_prefix(view, patches_field)
    proj = {"u": f"${pre}vc_uniqueness", "w": nonempty(f"${pre}vc_issues")}
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
            facets.update(health_facets())
        res = list(view._aggregate(pipeline=pre_pipe + [{"$project": proj},
                                                        {"$facet": facets}]))
        res = res[0] if res else {}
        docs = {lv: res.get(f"s{lv}") or [] for lv in levels}
    health_ = parse_health(res, patches_field) if with_health else None
    return {lv: dict(clusters={d["_id"]: (int(d["n"]), d.get("u"), int(d.get("i") or 0))
                               for d in docs[lv] if d["_id"] is not None},
                     health=health_)
            for lv in levels}


def view_stats(view, vkey, level, patches_field=None, prefetch=True):
    """``(health, level stats)`` of the view, cached under ``vkey`` (see :mod:`.cache`): one
    database scan when they are not cached yet; then, with ``prefetch``, the other levels are
    computed in the background (one scan), so that a knob move is a cache hit."""
    h = cache.peek(("health", vkey))
    stats = cache.peek(("level", vkey, level))
    if stats is None or h is None:
        stats = levels_stats(view, [level], patches_field, with_health=h is None)[level]
        if stats["health"] is not None:
            h = stats["health"]
            cache.store(("health", vkey), h)
        cache.store(("level", vkey, level), stats)
        others = [lv for lv in range(1, LEVELS + 1)
                  if lv != level and cache.peek(("level", vkey, lv)) is None]
        if prefetch and others:
            def work():
                for lv, st in levels_stats(view, others, patches_field).items():
                    cache.store(("level", vkey, lv), st)

            cache.warm(vkey, work)
    return h, stats
