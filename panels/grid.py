"""Drawing the cluster grid: one card per cluster (title, labels and figures in one text block,
thumbnails, buttons) and the footer (pager and granularity knob). ``owner`` is the panel whose
handlers the components call."""
from __future__ import annotations

import fiftyone.operators.types as types

from ..core.analyzers import LEVELS

PLUGIN = "@visual-curation/curation"
THUMB_PX = 42
CARD_PX = 300


def plural(count, what):
    """``"1 image"``, ``"3 images"`` (``what`` is the plural)."""
    return f"{count:,} {what[:-1] if count == 1 else what}"


def card(owner, grid, i, c, cards, what, sel, video=None, fix=None):
    """One cluster card ``c`` (``cards``: :func:`.cards.build_cards`'s page) in ``grid``."""
    cid = c["id"]
    params = {"cluster": cid, "level": cards["level"], "count": c["count"]}
    box = grid.v_stack(
        f"card_{i}", gap=0.5, variant="outline", pad=1,
        componentsProps={"item": {"sx": {"width": f"{CARD_PX}px", "flex": "0 0 auto"}}})
    active = sel and str(sel.get("id")) == str(cid) and sel.get("level") == cards["level"]
    noun = plural(c["count"], what).split(" ", 1)[1]
    title = f"**Cluster {cid}** — **{c['count']:,}** {noun}"
    if c.get("not_grouped"):
        title = (f"**Not grouped** — **{c['count']:,}** {what} like no other at this "
                 "level")
    if c["size"] and c["size"] != c["count"]:
        title += f" (of {c['size']:,})"
    if active:
        title += " ●"
    labels = " · ".join(f"{lab} ({n:,})" for lab, n in (c["labels"] or [])) or "—"
    extra = [f"uniqueness {c['uniqueness']:.2f}"] if c["uniqueness"] is not None else []
    if cards.get("similarity") is not None and not c.get("not_grouped"):
        extra.insert(0, f"{cards['level_name']} (≥ {cards['similarity']:.2f})")
    extra.append(f"{c['issues']:,} with issues")
    # one text block per card (title, labels, figures): the App redraws every component
    # of the panel on each change, so a card keeps few of them
    box.md(f"{title}  \n{labels}  \n{' · '.join(extra)}", name="title")
    thumbs = box.grid("thumbs", gap=0.5)  # flex-wrap
    for j, t in enumerate(c["thumbs"]):
        thumbs.str(f"t{j}", default=t["url"],
                   view=types.ImageView(width=f"{THUMB_PX}px", height=f"{THUMB_PX}px",
                                        alt=f"cluster {cid} thumbnail {j}",
                                        operator=owner.on_open, params=params,
                                        componentsProps={"image": {"style": {
                                            "objectFit": "cover", "borderRadius": "3px",
                                            "cursor": "pointer", "width": f"{THUMB_PX}px",
                                            "height": f"{THUMB_PX}px"}}}))
    btns = box.btn_group("actions")
    btns.btn("show", label="Show", icon="grid_view", on_click=owner.on_open, params=params)
    if not c.get("not_grouped"):
        btns.btn("similar", label="Similar", icon="search", on_click=owner.on_similar,
                 params=params)
    btns.btn("tag", label="Tag", icon="sell", on_click=owner.on_tag, params=params)
    if fix is not None and c["issues"] and not c.get("not_grouped"):  # per-card fix form
        btns.btn("fix", label="Fix labels", icon="spellcheck", prompt=True,
                 on_click=f"{PLUGIN}/accept_suggestions",
                 params={**fix, "cluster": cid, "level": cards["level"]})
    if video:  # core frames: the first thumbnail's video, from that frame's time
        btns.btn("video", label="Video", icon="movie",
                 on_click=f"{PLUGIN}/open_source_video", params=video)



def footer(owner, panel, cards, s):
    """The pager and the granularity knob."""
    # flex-wrap: the pager on the left, the knob at the bottom right (below the pager
    # when the panel is narrow); sticky at the bottom of the panel
    foot = panel.grid(
        "footer", gap=2, align_x="space-between", align_y="center",
        componentsProps={"item": {"sx": {"position": "sticky", "bottom": 0, "zIndex": 3,
                                          "backgroundColor": "background.level1",
                                          "borderTop": "1px solid",
                                          "borderColor": "divider"}}})
    pager = foot.h_stack("pager", gap=1, align_y="center",
                         componentsProps={"item": {"sx": {"width": "auto"}}})
    pager.btn("prev", label="Previous", icon="chevron_left", variant="outlined",
              disabled=cards["page"] <= 0, on_click=owner.on_page,
              params={"page": cards["page"] - 1})
    pager.md(f"Page {cards['page'] + 1} / {cards['pages']}", name="page",
             componentsProps={"item": {"sx": {"whiteSpace": "nowrap"}}})
    pager.btn("next", label="Next", icon="chevron_right", icon_position="right",
              variant="outlined", disabled=cards["page"] >= cards["pages"] - 1,
              on_click=owner.on_page, params={"page": cards["page"] + 1})
    marks = [{"value": k, "label": ("looser" if k == 1 else "stricter"
                                    if k == LEVELS else str(k))}
             for k in range(1, LEVELS + 1)]
    foot.int("level", label="Granularity",
             view=types.SliderView(
                 min=1, max=LEVELS, view_multiple_of=1, label="Granularity",
                 label_position="top", value_label_display="off", value_precision=0,
                 componentsProps={"slider": {"step": 1, "marks": marks},
                                  "item": {"sx": {"flex": "1 1 240px", "maxWidth": "420px",
                                                  "ml": "auto", "pr": 3,
                                                  "boxSizing": "border-box"}}}),
             on_change=owner.on_level)
