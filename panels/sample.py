"""The sample panel (in the sample modal): what the analyses say about the open sample and why.

Its issues with their scores and one line of reason each, its duplicate group (thumbnails, which
one is kept and why; a thumbnail opens that sample), its cluster at each granularity, the label
the mislabels analysis suggests with an **Accept** button, and **Find similar** (the nearest
samples to this one in the grid). Everything it shows comes from
:func:`visual_curation.core.explain.explain_sample`.
"""
from __future__ import annotations

import fiftyone.operators as foo
import fiftyone.operators.types as types

from ..core.analyzers import ANALYSES
from ..operators import results
from .thumbnails import media_url

NAME = "sample_panel"
LABEL = "Visual Curation: this sample"
SIMILAR_K = 50
THUMB_PX = 64


def _score(v):
    return "yes" if v is True else "no" if v is False else f"{float(v):.2f}"


class SamplePanel(foo.Panel):
    @property
    def config(self):
        return foo.PanelConfig(name=NAME, label=LABEL, icon="fact_check", surfaces="modal",
                               help_markdown="What Visual Curation's analyses say about the "
                                             "open sample, and why.")

    def on_load(self, ctx):
        pass

    def on_change_current_sample(self, ctx):
        pass

    # ------------------------------------------------------------------------------ actions

    def on_accept(self, ctx):
        """Writes the suggested label into the label field (the previous one is kept on the
        label, and **undo relabel** restores it)."""
        from ..core.labels import accept_suggestions

        sid = ctx.params.get("sample_id") or ctx.current_sample
        field = ctx.params.get("label_field")
        try:
            out = accept_suggestions(ctx.dataset.select(sid), field, ids=[sid])
        except Exception as e:  # noqa: BLE001
            ctx.ops.notify(f"Label not changed: {e}", variant="error")
            return
        ctx.ops.notify(f"Changed {out['changed']:,} label (the previous one is kept on it; "
                       "'undo relabel' restores it)", variant="success")
        ctx.ops.reload_samples()

    def on_similar(self, ctx):
        """The nearest samples to this one, in the grid (the modal closes)."""
        from ..core.similarity import search

        sid = ctx.params.get("sample_id") or ctx.current_sample
        try:
            res = search(ctx.dataset, sample_id=sid, k=SIMILAR_K, judge=False)
        except Exception as e:  # noqa: BLE001
            ctx.ops.notify(f"Find similar failed: {e}", variant="error")
            return
        ctx.ops.close_sample()
        results.show(ctx, res.view, f"the {len(res):,} nearest to a sample (your last "
                                    "search)")

    def on_open_member(self, ctx):
        ctx.ops.open_sample(id=ctx.params.get("id"))

    # ------------------------------------------------------------------------------- render

    def render(self, ctx):
        panel = types.Object()
        sid = ctx.current_sample
        if ctx.dataset is None or not sid:
            panel.md("Open a sample to see what the analyses say about it.", name="empty")
            return types.Property(panel)
        if ctx.dataset.media_type != "image" or not ctx.dataset.has_sample_field("vc_issues"):
            panel.md("No Visual Curation analysis on this dataset yet: run **Visual Curation: "
                     "run analyses** (" + ", ".join(ANALYSES) + ").", name="empty")
            return types.Property(panel)
        from ..core.explain import explain_sample

        try:
            info = explain_sample(ctx.dataset, sid)
        except KeyError:
            panel.md("This sample is not in the dataset any more.", name="empty")
            return types.Property(panel)
        self._issues(panel, info)
        self._suggestion(panel, info)
        self._duplicates(panel, info)
        self._clusters(panel, info)
        btns = panel.btn_group("actions")
        btns.btn("similar", label="Find similar", icon="search", on_click=self.on_similar,
                 params={"sample_id": sid})
        return types.Property(panel, view=types.GridView(orientation="vertical", gap=1,
                                                         pad=1))

    @staticmethod
    def _issues(panel, info):
        flagged = [i for i in info["issues"] if i["flagged"]]
        lines = ["**Issues**: " + (", ".join(i["issue"] for i in flagged) if flagged
                                   else "none flagged")]
        for i in flagged:
            th = "" if i["threshold"] is None else f" (flagged from {i['threshold']:.2f})"
            lines.append(f"- **{i['issue']}** {_score(i['score'])}{th}: {i['reason']}")
        rest = [i for i in info["issues"] if not i["flagged"]]
        tail = []
        if rest:
            tail.append("Other scores: " + " · ".join(
                f"{i['issue']} {_score(i['score'])}" for i in rest))
        if info["uniqueness"] is not None:
            tail.append(f"Uniqueness {info['uniqueness']:.2f} (0 many look-alikes … 1 "
                        "unlike the rest)")
        panel.md("\n".join(lines) + "\n\n" + "  \n".join(tail), name="issues")

    def _suggestion(self, panel, info):
        s = info["suggestion"]
        if not s:
            return
        conf = "" if s["confidence"] is None else f" (confidence {s['confidence']:.2f})"
        panel.md(f"**Suggested label**: '{s['suggested']}' instead of '{s['label']}'{conf}",
                 name="suggestion")
        panel.btn("accept", label=f"Accept '{s['suggested']}'", icon="spellcheck",
                  variant="contained", on_click=self.on_accept,
                  params={"sample_id": info["id"], "label_field": s["label_field"]})

    def _duplicates(self, panel, info):
        d = info["duplicates"]
        if not d:
            panel.md("**Duplicates**: none", name="duplicates")
            return
        this = next(m for m in d["members"] if m["id"] == info["id"])
        role = "the one kept" if this["kept"] else "a copy to drop"
        panel.md(f"**Duplicate group** of {len(d['members'])}: this image is {role}; "
                 f"{d['why']}.", name="duplicates")
        grid = panel.grid("dup_thumbs", gap=1)
        for j, m in enumerate(d["members"]):
            res = f" {m['resolution'][0]}×{m['resolution'][1]}" if m["resolution"] else ""
            tag = ("kept" if m["kept"] else "copy") + res + (" · this" if m["id"] == info["id"]
                                                            else "")
            cell = grid.v_stack(f"m{j}", gap=0)
            cell.str("img", default=media_url(m["filepath"]),
                     view=types.ImageView(width=f"{THUMB_PX}px", height=f"{THUMB_PX}px",
                                          alt=f"duplicate {tag}", operator=self.on_open_member,
                                          params={"id": m["id"]}))
            cell.md(tag, name="tag")

    @staticmethod
    def _clusters(panel, info):
        if not info["clusters"]:
            return
        panel.md("**Clusters** (granularity: cluster, its size): " + " · ".join(
            f"{c['level']}: {c['cluster']} ({c['size']:,})" for c in info["clusters"]),
            name="clusters")
