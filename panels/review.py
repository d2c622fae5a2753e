"""The data-quality review of the cluster panel's health section: per issue (from the analyzer
registry) the histogram of its stored confidence over the view, a threshold slider, the
number flagged, and **Show** (the flagged items in the grid, most confident first), **Tag
flagged** and **Mark reviewed**. Moving a slider re-derives ``vc_issues`` from the stored
scores (:func:`visual_curation.core.review.set_issue_thresholds`, no analysis) and shows the
issue's flagged items in the grid. A yes/no issue (duplicate) has no slider.

:class:`ReviewSection` is mixed into the panel: it adds the event handlers and
:meth:`ReviewSection._review`, which renders into the health section."""
from __future__ import annotations

import logging
import re

import fiftyone.operators.types as types

from ..core import review as vcr
from . import cache

logger = logging.getLogger(__name__)

BOX_PX = 300
STEP = 0.01  # the threshold sliders' step
FLAGGED = "#FF6D04"
BELOW = "#9E9E9E"
_PATH = re.compile(r"issue_(\w+)\.threshold$")


def histograms(view, vkey, patches_field=None):
    """:func:`~visual_curation.core.review.issue_histograms` of the view, cached on ``vkey``."""
    return cache.cached(("review_hist", vkey),
                        lambda: vcr.issue_histograms(view, patches_field=patches_field))


def threshold_event(ctx, thresholds):
    """``(issue, value)`` of a slider event: from the event's path and value when the App
    sends them, else the one slider whose state differs from the stored threshold."""
    params = ctx.params or {}
    m = _PATH.search(str(params.get("path") or ""))
    if m and m.group(1) in thresholds and params.get("value") is not None:
        issue, value = m.group(1), float(params["value"])
        return (issue, value) if _moved(value, thresholds[issue]) else (None, None)
    health = ctx.panel.state.get("health") or {}
    for issue, t in thresholds.items():
        v = (health.get(f"issue_{issue}") or {}).get("threshold")
        if v is not None and _moved(float(v), t):
            return issue, float(v)
    return None, None


def _moved(value, stored):
    """Whether a slider value is a move away from the stored threshold. The App also sends
    the value a slider is (re)mounted with, e.g. when a box reappears as the view changes:
    that is the stored threshold (up to the slider's rounding) and must change nothing."""
    return stored is None or abs(value - float(stored)) >= STEP / 2


def selection_text(sel):
    """The grid line of the cards' header when the grid shows an issue's flagged items."""
    if sel and sel.get("action") == "issue":
        return f" · grid: flagged {sel.get('id')}"
    return None


class ReviewSection:
    """Handlers and rendering of the review; mixed into the cluster panel, which provides
    ``_state``, ``_base_view``, ``_base_stages`` and ``_apply``."""

    @staticmethod
    def review_thresholds(dataset, patches_field=None):
        """The threshold sliders' values as panel state (``{"issue_<name>": {"threshold"}}``):
        put in the state when the panel opens, so that the sliders find their value there
        and do not each send a change when first drawn."""
        try:
            state = vcr.review_state(dataset, patches_field=patches_field)
        except Exception:  # noqa: BLE001 - the sliders set them themselves
            return {}
        return {f"issue_{k}": {"threshold": v["threshold"]} for k, v in state.items()
                if not v["flag"]}

    def on_review(self, ctx):
        """The "Review issues" switch (the next render shows or hides the issue boxes)."""
        self._remember(ctx)

    def on_threshold(self, ctx):
        s = self._state(ctx)
        ds = ctx.dataset
        state = vcr.review_state(ds, patches_field=s["patches_field"])
        issue, value = threshold_event(ctx, {k: v["threshold"] for k, v in state.items()
                                             if not v["flag"]})
        logger.debug("cluster panel: threshold event %s -> %s, %s", ctx.params, issue, value)
        if issue is None:
            return
        try:
            out = vcr.set_issue_thresholds(ds, {issue: value}, patches_field=s["patches_field"])
        except Exception as e:  # noqa: BLE001
            ctx.ops.notify(f"Threshold not changed: {e}", variant="error")
            return
        self._show_issue(ctx, issue)
        ctx.ops.notify(f"{issue} ≥ {value:.2f}: {out['issues'].get(issue, 0):,} flagged "
                       f"({out['changed']:,} changed, {out['seconds']:.2f} s)",
                       variant="success")

    def on_issue_show(self, ctx):
        self._show_issue(ctx, ctx.params.get("issue"))

    def _show_issue(self, ctx, issue):
        s = self._state(ctx)
        view = vcr.flagged_view(self._base_stages(ctx), issue, patches_field=s["patches_field"])
        self._apply(ctx, view, {"id": issue, "action": "issue", "mode": s["mode"]})
        ctx.ops.reload_dataset()  # the same stages may now match other samples

    def on_issue_tag(self, ctx):
        s = self._state(ctx)
        issue = ctx.params.get("issue")
        done = vcr.tag_flagged(self._base_view(ctx), issue, tag=s["tag"] or None,
                               patches_field=s["patches_field"])
        cache.clear()
        ctx.ops.notify(f"Tagged {done['count']:,} flagged {issue} with '{done['tag']}'",
                       variant="success")
        ctx.ops.reload_dataset()

    def on_issue_reviewed(self, ctx):
        s = self._state(ctx)
        issue = ctx.params.get("issue")
        vcr.mark_reviewed(ctx.dataset, issue, reviewed=bool(ctx.params.get("reviewed", True)),
                          patches_field=s["patches_field"])

    # ------------------------------------------------------------------------------ render

    def _review(self, ctx, row, view, vkey, h, s):
        """One box per stored issue, in the health section ``row``."""
        pf = s["patches_field"]
        state = vcr.review_state(ctx.dataset, patches_field=pf)
        if not state or h.get("issues") is None:
            return
        # behind a switch: the App redraws every component of the panel on each change, and
        # a histogram and a slider per issue made every knob move and sort ~40 % slower
        row.bool("review", default=False, label="Review issues",
                 description="a histogram and a threshold slider per issue",
                 view=types.SwitchView(label="Review issues"), on_change=self.on_review,
                 componentsProps={"item": {"sx": {"flex": "0 0 auto", "width": "auto"}}})
        if not s.get("review"):
            return
        hists = histograms(view, vkey, pf)
        for issue, st in state.items():
            self._issue_box(row, issue, st, hists.get(issue) or {},
                            (h["issues"] or {}).get(issue, 0), h["items"])

    def _issue_box(self, row, issue, st, hist, flagged, items):
        box = row.v_stack(f"issue_{issue}", gap=0.5, variant="outline", pad=1,
                          componentsProps={"item": {"sx": {"width": f"{BOX_PX}px",
                                                           "flex": f"0 0 {BOX_PX}px"}}})
        share = f" ({flagged / items:.0%})" if items else ""
        title = f"**{issue}** · **{flagged:,}** flagged{share}"
        if st["flag"]:
            title += " · yes/no"
        rev = st.get("reviewed")
        if rev:
            title += f" · ✓ reviewed at {rev.get('threshold') or '—'}"
        box.md(title, name="title")
        if not st["flag"] and hist.get("counts"):
            self._histogram(box, issue, hist, st["threshold"])
            box.float("threshold", default=st["threshold"], label="threshold",
                      view=types.SliderView(
                          min=0, max=1, label="threshold", label_position="left",
                          value_label_display="auto", value_precision=2,
                          componentsProps={"slider": {"step": STEP}}),
                      on_change=self.on_threshold)
        tagged = st.get("tagged")
        if tagged:
            box.md(f"tagged '{tagged['tag']}' ({tagged['count']:,})", name="tagged")
        btns = box.btn_group("actions")
        params = {"issue": issue}
        btns.btn("show", label="Show", on_click=self.on_issue_show,
                 params=params)
        btns.btn("tag", label="Tag flagged", on_click=self.on_issue_tag, params=params)
        btns.btn("reviewed", label="Unmark reviewed" if rev else "Mark reviewed",
                 on_click=self.on_issue_reviewed,
                 params={**params, "reviewed": not rev})

    @staticmethod
    def _histogram(box, issue, hist, threshold):
        edges = hist["edges"]
        centers = [(a + b) / 2 for a, b in zip(edges[:-1], edges[1:])]
        colors = [FLAGGED if c >= threshold else BELOW for c in centers]
        box.plot(
            "hist",
            data=[{"type": "bar", "x": centers, "y": hist["counts"], "name": issue,
                   "marker": {"color": colors}}],
            layout={"height": 110, "width": BOX_PX - 20,
                    "margin": {"l": 34, "r": 6, "t": 6, "b": 22},
                    "xaxis": {"range": [0, 1]}, "yaxis": {"type": "log", "dtick": 1},
                    "bargap": 0.05,
                    "showlegend": False,
                    "shapes": [{"type": "line", "x0": threshold, "x1": threshold, "y0": 0,
                                "y1": 1, "yref": "paper",
                                "line": {"color": FLAGGED, "width": 2, "dash": "dot"}}]},
            config={"displayModeBar": False, "responsive": False},
            componentsProps={"item": {"sx": {"height": "116px"}}})
