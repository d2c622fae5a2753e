"""The user's sidebar filters, kept through the panel's interactions.

The App persists a panel's state in its spaces, and when they change it may reload its page
state, which drops the sidebar filters (seen in FiftyOne 1.22: the first knob move or sort after
a panel opens clears a ``vc_issues`` filter). The panel remembers the filters each interaction
was made with (:func:`remember`), and when the App then reports its view with the filters gone
within :data:`GUARD_S` of that interaction, puts them back (:func:`restore`, through the App's
``set_filters``). Kept in this process, not in the panel state, whose every change is persisted
again.
"""
from __future__ import annotations

import time

#: how long after a panel interaction dropped filters are put back (s), and how many times
GUARD_S, RESTORES = 6.0, 4
_GUARDS: dict = {}   # (dataset, panel id) -> {"filters", "at", "restored"}


def _key(ctx):
    return (ctx.dataset.name if ctx.dataset is not None else None, ctx.panel.id)


def remember(ctx) -> None:
    """The sidebar filters of this panel event (none: nothing to keep)."""
    filters = ctx.request_params.get("filters") or {}
    if filters:
        while len(_GUARDS) >= 64:
            _GUARDS.pop(next(iter(_GUARDS)))
        _GUARDS[_key(ctx)] = {"filters": filters, "at": time.time(), "restored": 0}
    else:
        _GUARDS.pop(_key(ctx), None)


def restore(ctx) -> bool:
    """On the App's view-change event: puts back the remembered filters if the App dropped
    them right after a panel interaction. Returns whether it did."""
    guard = _GUARDS.get(_key(ctx))
    if not guard or ctx.request_params.get("filters"):
        return False
    if time.time() - guard["at"] > GUARD_S or guard["restored"] >= RESTORES:
        _GUARDS.pop(_key(ctx), None)
        return False
    guard.update(at=time.time(), restored=guard["restored"] + 1)
    ctx.trigger("set_filters", params=guard["filters"])
    return True
