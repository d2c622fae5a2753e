"""The cluster panel: the dataset as a grid of cluster previews.

Everything it shows comes from plain functions over the App's current view, one module per
concern: :mod:`.stored` (what the analysis stored, what is computed), :mod:`.statistics` (health
summary, per-cluster counts), :mod:`.cards` (a page of cards), :mod:`.thumbnails`,
:mod:`.actions` (what the card buttons do), with :mod:`visual_curation.core.views`;
:mod:`.cache` keeps the results.
This module only turns those dicts into App components and wires the events.

Panel state (``ctx.panel.state``): the widgets keep their own values (``footer.level`` 1
loosest … 5 strictest, ``controls.sort``, ``controls.mode`` ``"images"``/``"objects"``,
``controls.patches_field``, ``controls.tag``); ``page``; and, after a card was opened,
``base_view`` (the view the cards are counted on), ``applied`` (the view the panel set) and
``selected`` (the cluster shown in the grid).
"""
from __future__ import annotations

import copy
import logging
import time

import fiftyone.operators as foo
import fiftyone.operators.types as types

from ..core import views
from ..operators import results
from . import actions, cache, filters, review, sent, statistics, stored
from . import grid as grid_
from .grid import PLUGIN, plural
from .cards import SORTS, build_cards

logger = logging.getLogger(__name__)


NAME = "cluster_panel"
LABEL = "Visual Curation: clusters"
SETTINGS_STORE = "visual_curation_panel"   # per dataset: the execution store of the settings
SETTINGS_KEY = "settings"

HELP = """
**Visual Curation: clusters** — one card per visual cluster of the current view.

* The knob (bottom right) changes the granularity: left = looser (fewer, larger clusters),
  right = stricter. Each level is a similarity calibrated on this dataset (the header says
  which); it reads the five stored levels, nothing is recomputed.
* Images like no other at a level gather in one **Not grouped** card after the real groups
  (and the header's **Not grouped (N)** button).
* Click a thumbnail or **Show** to put the cluster's samples in the grid (your sidebar filters
  keep applying), **Similar** for the nearest samples to the cluster, **Tag** to tag it.
* **Dataset health**: the counts per issue; with **Review issues** on, per issue, the histogram
  of its confidence and a threshold slider; moving it re-derives `vc_issues` from the stored
  scores (no new analysis) and shows the flagged samples in the grid. **Tag flagged** and **Mark reviewed** are remembered on the analysis run.
* **Object view** shows clusters of detection crops (run the analyses in Object view first).
* On the core frames of videos, **Video** opens the video of the card's first thumbnail at
  that frame.
"""


def _saved_settings(ctx):
    """The settings :meth:`ClusterPanel._remember` stored for the dataset ({} if none)."""
    try:
        return dict(ctx.store(SETTINGS_STORE).get(SETTINGS_KEY) or {})
    except Exception:  # noqa: BLE001 - no store: the defaults
        return {}


def _int(x, default):
    try:
        return int(x)
    except (TypeError, ValueError):
        return default


class ClusterPanel(review.ReviewSection, foo.Panel):
    @property
    def config(self):
        return foo.PanelConfig(
            name=NAME,
            label=LABEL,
            icon="bubble_chart",
            help_markdown=HELP,
            surfaces="grid",
            allow_multiple=False,
        )

    # ---------------------------------------------------------------------------- state

    def _state(self, ctx):
        """The panel settings. The widgets' own state paths are the source of truth
        (``footer.level``, ``controls.sort``, ``controls.mode``, ``controls.patches_field``), so
        that an event carrying a slightly stale state never reverts a setting."""
        st = ctx.panel.state
        controls = st.get("controls") or {}
        footer = st.get("footer") or {}
        mode = controls.get("mode") if controls.get("mode") in ("images", "objects") else "images"
        pf = None
        if mode == "objects" and ctx.dataset is not None:
            fields = stored.detection_fields(ctx.dataset)
            pf = controls.get("patches_field")
            if pf not in fields:
                analysed = stored.analysed_patch_fields(ctx.dataset)
                pf = (analysed or fields or [None])[0]
        sort = controls.get("sort")
        return dict(level=stored.clamp_level(footer.get("level") or stored.DEFAULT_LEVEL),
                    sort=sort if sort in SORTS else "size",
                    page=max(0, _int(st.get("page"), 0)), mode=mode, patches_field=pf,
                    tag=(controls.get("tag") or "").strip(),
                    review=bool((st.get("health") or {}).get("review")))

    def _reset(self, ctx):
        """A panel opened (or a dataset switched to) starts with the settings it last had on
        this dataset (:meth:`_remember`), nothing shown by it."""
        saved = _saved_settings(ctx)
        mode = saved.get("mode") if saved.get("mode") in ("images", "objects") else "images"
        ctx.panel.state.set({
            "page": max(0, _int(saved.get("page"), 0)), "base_view": None, "applied": None,
            "selected": None,
            "controls": {"mode": mode,
                         "sort": saved.get("sort") if saved.get("sort") in SORTS else "size",
                         "patches_field": saved.get("patches_field") if mode == "objects"
                         else None,
                         "tag": str(saved.get("tag") or "")},
            "footer": {"level": stored.clamp_level(saved.get("level") or stored.DEFAULT_LEVEL)},
            "health": {"review": bool(saved.get("review")),
                       **self.review_thresholds(ctx.dataset, saved.get("patches_field")
                                                if mode == "objects" else None)},
        })

    def _remember(self, ctx):
        """Keeps the settings (level, sort, mode, objects field, tag, page, review switch) in
        the dataset's execution store, so closing and reopening the panel, or reloading the
        page, keeps them."""
        s = self._state(ctx)
        try:
            ctx.store(SETTINGS_STORE).set(SETTINGS_KEY, {
                k: s[k] for k in ("level", "sort", "mode", "patches_field", "tag", "page",
                                  "review")})
        except Exception as e:  # noqa: BLE001 - only the memory of the settings is lost
            logger.debug("cluster panel: settings not stored: %s", e)

    def _ours(self, ctx):
        """Whether the App's view is the one this panel set (a cluster is shown)."""
        applied = ctx.panel.state.get("applied")
        if not applied:
            return False
        return views.stage_signature(ctx.request_params.get("view")) == applied

    def _base_stages(self, ctx):
        """The view the panel builds its grid views on: the App's view-bar stages without the
        sidebar filters (or, while a view set by this panel is shown, the stages it was set
        from). The sidebar filters stay the user's, in the sidebar, and keep applying."""
        import fiftyone.core.view as fov

        stages = ctx.request_params.get("view") or []
        if self._ours(ctx) and ctx.panel.state.get("base_view") is not None:
            stages = ctx.panel.state.get("base_view")
        try:
            view = fov.DatasetView._build(ctx.dataset, stages) if stages else ctx.dataset.view()
        except Exception as e:  # noqa: BLE001
            logger.warning("cluster panel: cannot rebuild the view's stages: %s", e)
            view = ctx.dataset.view()
        return views.source_collection(view)

    def _base_view(self, ctx):
        """The view the cards are counted on: the App's view with its sidebar filters, or,
        while a view set by this panel is shown, the view it was set from (with the current
        sidebar filters)."""
        import fiftyone.server.view as fosv

        if self._ours(ctx) and ctx.panel.state.get("base_view") is not None:
            try:
                stages = ctx.panel.state.get("base_view")
                sidebar = ctx.request_params.get("filters")
                if sidebar:
                    return views.source_collection(
                        fosv.get_view(ctx.dataset, stages=stages, filters=sidebar))
                return self._base_stages(ctx)
            except Exception as e:  # noqa: BLE001
                logger.warning("cluster panel: cannot rebuild the base view: %s", e)
        return views.source_collection(ctx.view)

    # ---------------------------------------------------------------------------- events

    def execute(self, ctx):
        """As FiftyOne's panel execute (the event's handler, then a render), except that an
        output identical to the one the App already shows is not sent again (:mod:`.sent`):
        the App redraws every output it gets, and most of its events change nothing here."""
        method = ctx.params.get("__method__")
        if method is None or method == "on_startup":
            return super().execute(ctx)
        result = None
        if hasattr(self, method):
            ctx.event_args = ctx.params.get("event_args", {})
            result = getattr(self, method)(ctx)
        output = self.render(ctx)
        if sent.changed(ctx.panel.id, output, force=method in ("on_load", "on_change_dataset")):
            ctx.ops.show_panel_output(output)
        return result

    def on_load(self, ctx):
        self._reset(ctx)

    def on_change_dataset(self, ctx):
        self._reset(ctx)

    def on_change_view(self, ctx):
        """The next render counts on the new view; nothing is stored (the App also sends this
        event with a state that may predate the last patch). Sidebar filters that a reload of
        the App dropped are put back; a user's own clear is kept (:mod:`.filters`)."""
        filters.observe(ctx)

    # the widgets store their value themselves (see _state); a new setting starts on page 1

    def _first_page(self, ctx):
        """A new setting starts on page 1 (the state is only patched when it changes: every
        patch makes the App persist its spaces and reload)."""
        if _int(ctx.panel.state.get("page"), 0) != 0:
            ctx.panel.state.page = 0
        self._remember(ctx)
        filters.remember(ctx)

    def on_level(self, ctx):
        self._first_page(ctx)

    def on_sort(self, ctx):
        self._first_page(ctx)

    def on_mode(self, ctx):
        self._first_page(ctx)

    def on_patches_field(self, ctx):
        self._first_page(ctx)

    def on_page(self, ctx):
        """Previous / Next: the button carries the page to show."""
        ctx.panel.state.page = max(0, _int(ctx.params.get("page"), 0))
        self._remember(ctx)
        filters.remember(ctx)

    def _apply(self, ctx, view, selected):
        """Shows ``view`` (built on :meth:`_base_stages`) in the grid; the sidebar filters
        stay as they are and keep applying."""
        patch = {"applied": views.stage_signature(views.serialize_view(view)),
                 "selected": selected}
        if not self._ours(ctx):
            patch["base_view"] = views.serialize_view(self._base_stages(ctx))
        ctx.panel.state.set(patch)
        filters.remember(ctx)
        what = {"show": "cluster {id} (granularity {level})",
                "similar": "the nearest to cluster {id} (granularity {level})",
                "issue": "the flagged {id}"}.get(selected.get("action"), "a view")
        if selected.get("id") == stored.NOT_GROUPED:
            what = "the items not grouped at granularity {level}"
        results.show(ctx, view, what.format(**selected) + " from the cluster panel")

    def on_open(self, ctx):
        s = self._state(ctx)
        cid = ctx.params.get("cluster")
        level = ctx.params.get("level", s["level"])
        view = actions.cluster_view(self._base_stages(ctx), level, cid, s["patches_field"])
        self._apply(ctx, view, {"id": cid, "level": level, "action": "show",
                                "mode": s["mode"]})

    def on_similar(self, ctx):
        s = self._state(ctx)
        cid = ctx.params.get("cluster")
        level = ctx.params.get("level", s["level"])
        try:
            view = actions.similar_view(self._base_view(ctx), level, cid, s["patches_field"],
                                        count=ctx.params.get("count"),
                                        onto=self._base_stages(ctx))
        except Exception as e:  # noqa: BLE001
            ctx.ops.notify(f"Find similar failed: {e}", variant="error")
            return
        self._apply(ctx, view, {"id": cid, "level": level, "action": "similar",
                                "mode": s["mode"]})

    def on_tag(self, ctx):
        s = self._state(ctx)
        cid = ctx.params.get("cluster")
        level = ctx.params.get("level", s["level"])
        tag = s["tag"] or actions.default_tag(level, cid)
        n = actions.tag_cluster(self._base_view(ctx), level, cid, tag, s["patches_field"])
        cache.clear()
        what = "objects" if s["patches_field"] else "samples"
        ctx.ops.notify(f"Tagged {plural(n, what)} of cluster {cid} with '{tag}'",
                       variant="success")
        ctx.ops.reload_dataset()

    def on_clear(self, ctx):
        """**Show all**: back to exactly the view-bar stages the user had (their sidebar
        filters were never touched)."""
        base = self._base_stages(ctx) if self._ours(ctx) else None
        filters.remember(ctx)
        ctx.panel.state.set({"applied": None, "selected": None, "base_view": None})
        if base is not None:
            ctx.ops.set_view(base)

    # ---------------------------------------------------------------------------- render

    def render(self, ctx):
        t0 = time.perf_counter()
        panel = types.Object()
        if ctx.dataset is None:
            panel.md("Open a dataset to see its visual clusters.", name="no_dataset")
            return types.Property(panel, view=self._root_view())
        s = self._state(ctx)
        view = self._base_view(ctx)
        det_fields = stored.detection_fields(ctx.dataset)
        self._controls(ctx, panel, s, det_fields)

        pf = s["patches_field"]
        if s["mode"] == "objects" and not pf:
            panel.md("Object view needs a Detections field on the dataset.", name="empty")
            return types.Property(panel, view=self._root_view())
        state, message = stored.status(view, pf)
        if state != "ready":
            self._empty(ctx, panel, message, state, s)
            return types.Property(panel, view=self._root_view())

        vkey = (views.view_key(view), pf, stored.run_stamp(ctx.dataset, pf),
                cache.data_version(ctx.dataset))
        h, stats = statistics.view_stats(view, vkey, s["level"], pf)
        cards = copy.deepcopy(cache.cached(
            ("cards", vkey, s["level"], s["sort"], s["page"]),
            lambda: build_cards(view, s["level"], s["sort"], s["page"], pf, stats=stats)))
        self._review(ctx, self._health(panel, h, s), view, vkey, h, s)
        self._cards(ctx, panel, cards, s)
        grid_.footer(self, panel, cards, s)
        logger.debug("cluster panel render: %.1f ms", 1000 * (time.perf_counter() - t0))
        return types.Property(panel, view=self._root_view())

    @staticmethod
    def _root_view():
        return types.GridView(orientation="vertical", gap=1, pad=1,
                              componentsProps={"grid": {"sx": {"alignContent": "start"}}})

    def _controls(self, ctx, panel, s, det_fields):
        row = panel.h_stack("controls", gap=2, align_y="center")
        if det_fields:
            mode = types.RadioGroup(orientation="horizontal")
            mode.add_choice("images", label="Image view")
            mode.add_choice("objects", label="Object view")
            row.enum("mode", mode.values(), view=mode, on_change=self.on_mode)
            if s["mode"] == "objects" and len(det_fields) > 1:
                dd = types.Dropdown(label="Detections")
                for f in det_fields:
                    dd.add_choice(f, label=f)
                row.enum("patches_field", dd.values(), view=dd,
                         on_change=self.on_patches_field)
        sort = types.Dropdown(label="Sort")
        for k, lab in SORTS.items():
            sort.add_choice(k, label=lab)
        row.enum("sort", sort.values(), view=sort, on_change=self.on_sort)
        row.str("tag", label="Tag name",
                view=types.TextFieldView(label="Tag name",
                                         placeholder="default: cluster_L<level>_<id>"))

    def _empty(self, ctx, panel, message, state, s):
        box = panel.v_stack("empty", gap=1, variant="outline", pad=2)
        if not s["patches_field"]:
            other = stored.analysed_patch_fields(ctx.dataset)
            if other:
                message += (f"  \nThe objects of '{other[0]}' are analysed: choose "
                            "**Object view** above to browse their clusters.")
        box.md(message, name="message")
        params = {"kind": "objects", "patches_field": s["patches_field"]} \
            if s["patches_field"] else {"kind": "images"}
        btns = box.btn_group("actions")
        btns.btn("compute_embeddings", label="Visual Curation: compute embeddings",
                 variant="contained" if state == "none" else "outlined",
                 on_click=f"{PLUGIN}/compute_embeddings", prompt=True, params=params)
        btns.btn("run_analyses", label="Visual Curation: run analyses",
                 variant="contained" if state == "embeddings" else "outlined",
                 on_click=f"{PLUGIN}/run_analyses", prompt=True, params=params)

    def _health(self, panel, h, s):
        row = panel.grid("health", gap=2, align_y="center", variant="outline", pad=1)
        what = "objects" if s["patches_field"] else "images"
        lines = [f"**Dataset health** · {plural(h['items'], what)} in view"]
        if h["with_issues"] is not None:
            lines[0] += f" · **{h['with_issues']:,}** with issues"
            lines.append(" · ".join(f"{k} **{v:,}**" for k, v in h["issues"].items()))
        else:
            lines.append("No issue analysis yet")
        u = h["uniqueness"]
        if u and u.get("mean") is not None:
            lines.append(f"mean uniqueness **{u['mean']:.2f}**")
        row.md("  \n".join(lines), name="summary",
               componentsProps={"item": {"sx": {"flex": "1 1 220px", "width": "auto"}}})
        if u:
            centers = [(a + b) / 2 for a, b in zip(u["edges"][:-1], u["edges"][1:])]
            row.plot(
                "uniqueness",
                data=[{"type": "bar", "x": centers, "y": u["counts"], "name": "uniqueness",
                       "marker": {"color": "#FF6D04"}}],
                layout={"height": 130, "width": 300,
                        "margin": {"l": 36, "r": 8, "t": 24, "b": 28},
                        "title": {"text": "uniqueness", "font": {"size": 12}},
                        "xaxis": {"range": [0, 1]}, "bargap": 0.05, "showlegend": False},
                config={"displayModeBar": False, "responsive": False},
                componentsProps={"item": {"sx": {"width": "310px", "height": "140px",
                                                 "flex": "0 0 310px"}}},
            )
        return row

    def _cards(self, ctx, panel, cards, s):
        what = "objects" if s["patches_field"] else "images"
        sel = ctx.panel.state.get("selected") if self._ours(ctx) else None
        head = (f"**{cards['clusters']:,} clusters** at granularity {cards['level']} · "
                f"{plural(cards['items'], what)} in view")
        if cards.get("not_grouped"):
            head += f" · {plural(cards['not_grouped'], what)} not grouped"
        if cards.get("meaning"):
            head += f"  \n_{cards['meaning']}_"
        if review.selection_text(sel):
            head += review.selection_text(sel)
        elif sel and sel.get("id") == stored.NOT_GROUPED:
            head += f" · grid: showing the items not grouped (level {sel.get('level')})"
        elif sel:
            verb = "similar to" if sel.get("action") == "similar" else "showing"
            head += f" · grid: {verb} cluster {sel.get('id')} (level {sel.get('level')})"
        top = panel.h_stack("cards_header", gap=2, align_y="center")
        top.md(head, name="title")
        if cards.get("not_grouped"):
            top.btn("not_grouped", label=f"Not grouped ({cards['not_grouped']:,})",
                    icon="scatter_plot", variant="outlined", on_click=self.on_open,
                    params={"cluster": stored.NOT_GROUPED, "level": cards["level"]})
        if sel:
            top.btn("clear", label="Show all", icon="close", variant="outlined",
                    on_click=self.on_clear)
        if not cards["cards"]:
            panel.md("No clustered items match the current view.", name="no_cards")
            return
        grid = panel.grid("cards", gap=1)  # flex-wrap
        from ..core.video import is_core_frames

        core_frames = not s["patches_field"] and is_core_frames(ctx.dataset)
        fix = actions.fix_labels_params(ctx.dataset, s["patches_field"])
        for i, c in enumerate(cards["cards"]):
            video = (actions.source_video_params(ctx.dataset, c, s["patches_field"])
                     if core_frames else None)
            grid_.card(self, grid, i, c, cards, what, sel, video, fix)

