"""The user's sidebar filters, kept through the panel's interactions.

The App persists a panel's state in its spaces, and when they change it may reload its page
state, which drops the sidebar filters (seen in FiftyOne 1.22: a knob move or sort after a
panel opens clears a ``vc_issues`` filter; the drop may reach the panel before or after the
event of the interaction that caused it). A reload has a signature: the App reports its view
again, **unchanged**, and the filters it reports with it or right after it are empty. A user who
clears the filters (the sidebar, "Clear sidebar filters") changes only the filters.

So the panel follows the App's view-change events (:func:`observe`): it keeps the last filters
the App reported outside a reload, and when a reload drops them it puts them back (through the
App's ``set_filters``); the reload is over once the App reports them again. A view the panel
itself set ("Show", "Show all") that the App reports with the filters gone is such a drop too.
An empty report that follows no reload is the user's own clear and is kept. Kept in this
process, not in the panel state, whose every change is persisted again.
"""
from __future__ import annotations

import time

#: how long after the App re-reports an unchanged view an empty filter report counts as part
#: of that reload (s), and how many times one reload's drop is put back
RELOAD_S, RESTORES = 3.0, 3
_SEEN: dict = {}   # (dataset, panel id) -> {"view", "filters", "reload_at", "restored"}


def _key(ctx):
    return (ctx.dataset.name if ctx.dataset is not None else None, ctx.panel.id)


def _state(ctx) -> dict:
    key = _key(ctx)
    if key not in _SEEN:
        while len(_SEEN) >= 64:
            _SEEN.pop(next(iter(_SEEN)))
        _SEEN[key] = {"view": None, "filters": {}, "reload_at": 0.0, "restored": 0,
                      "acted_at": 0.0}
    return _SEEN[key]


def remember(ctx) -> None:
    """A panel interaction: the filters it was made with are the user's (an empty report here
    proves nothing, the App may have dropped them a moment before), and the App's reports for
    the next :data:`RELOAD_S` follow from it (the panel's state changed: a reload may come)."""
    filters = ctx.request_params.get("filters") or {}
    if filters:
        st = _state(ctx)
        st.update(filters=filters, acted_at=time.time())


def _restore(ctx, st) -> bool:
    if not st["filters"] or st["restored"] >= RESTORES:
        return False
    st["restored"] += 1
    ctx.trigger("set_filters", params=st["filters"])
    return True


def observe(ctx) -> bool:
    """On the App's view-change event (its ``value`` is the view's stages, or the sidebar
    filters): follows the user's filters and puts them back when a reload of the App dropped
    them. Returns whether it did."""
    st = _state(ctx)
    value = ctx.params.get("value")
    reported = ctx.request_params.get("filters") or {}
    now = time.time()
    if isinstance(value, list):                        # the view
        if st["view"] is not None and value == st["view"]:
            if now - st["reload_at"] > RELOAD_S:
                st["restored"] = 0
            st["reload_at"] = now                      # the same view again: a reload
            return False if reported else _restore(ctx, st)
        st["view"] = value                             # a new view
        if reported or now - st["acted_at"] > RELOAD_S:
            st["filters"] = reported                   # with the filters the App reports
            return False
        st.update(reload_at=now, restored=0)           # set by the panel ("Show", "Show
        return _restore(ctx, st)                       # all"): the App dropped the filters
    filters = value if isinstance(value, dict) else reported
    if filters:
        st["filters"] = filters
        if st["restored"]:
            st["reload_at"] = 0.0                      # back after a drop: the reload is over
        return False
    if now - st["reload_at"] <= RELOAD_S:              # dropped by the reload
        return _restore(ctx, st)
    st["filters"] = {}                                 # cleared by the user
    return False
