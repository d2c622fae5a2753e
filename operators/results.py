"""The result views this plugin put in the grid, remembered per dataset, so that the next form
does what the user means: a search result in the grid is not where the next search should look
unless the user narrowed it themselves.

The last view set (its stages, without stage uuids) and a description of it are kept in the
dataset's execution store. :func:`last_result` says whether the App's grid still shows it.
"""
from __future__ import annotations

import logging

from ..core import views

logger = logging.getLogger(__name__)

STORE = "visual_curation"
KEY = "last_result"


def remember(ctx, view, what: str) -> None:
    """Records that ``view`` (described by ``what``, e.g. "50 results of your last search")
    is being put in the grid."""
    try:
        ctx.store(STORE).set(KEY, {"stages": views.stage_signature(views.serialize_view(view)),
                                   "what": what})
    except Exception as e:  # noqa: BLE001 - only the form defaults lose the memory
        logger.debug("result view not remembered: %s", e)


def show(ctx, view, what: str) -> None:
    """Puts ``view`` in the grid as this plugin's result, described by ``what``."""
    remember(ctx, view, what)
    ctx.ops.set_view(view=view)


def last_result(ctx) -> str | None:
    """The description of the grid's view when it is, unchanged, the last result this plugin
    set: no other stage, no sidebar filter, nothing selected. None otherwise (the user's own
    view, or nothing set)."""
    stages = ctx.request_params.get("view") or []
    if not stages or ctx.request_params.get("filters") or ctx.selected:
        return None
    try:
        rec = ctx.store(STORE).get(KEY) or {}
    except Exception:  # noqa: BLE001 - no store: nothing remembered
        return None
    if rec.get("stages") == views.stage_signature(stages):
        return rec.get("what")
    return None


def target_input(ctx, inputs, action="Process", allow_selected_samples=True):
    """FiftyOne's target input (dataset / current view / selection) with a default that does
    what the user means: the whole dataset when the grid shows the last result this plugin set
    (named as such), else FiftyOne's default (the narrowest: a selection, then a filtered or
    staged view)."""
    what = last_result(ctx)
    kw = {}
    if what:
        kw = dict(default_target="DATASET",
                  current_view_description=f"Current view: {what}")
    return inputs.view_target(ctx, action_description=action,
                              allow_selected_samples=allow_selected_samples, **kw)


def target(ctx):
    """The target collection: the form's choice, else the same default as
    :func:`target_input` (an SDK call without ``view_target``)."""
    chosen = ctx.params.get("view_target") or ctx.request_params.get("view_target")
    if not chosen and last_result(ctx):
        return ctx.dataset
    return ctx.target_view()
