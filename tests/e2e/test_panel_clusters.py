"""The cluster panel in the REAL FiftyOne App (headless Chromium): opened the way a user opens a
panel (the "+" tab button of the grid area, then the panel's label), it shows cluster cards with
counts and thumbnails; the granularity knob changes the cards; clicking a card puts that
cluster's samples in the grid; Object view shows clusters of detection crops. Every step leaves
a screenshot in test-artifacts/ (panel-*.png)."""
import os
import re
from pathlib import Path

import pytest

from visual_curation.panels.cards import PAGE_SIZE

from . import browser
from .browser import grid_count, open_dataset, wait_grid

pytestmark = [pytest.mark.e2e]

LABEL = "Visual Curation: clusters"
PANEL = "[data-cy=panel-content-cluster_panel]"
TAB = "[data-cy=panel-tab-cluster_panel]"
CARD_TITLE = re.compile(r"^Cluster (\d+) — ([\d,]+) (images?|objects?)\b")
HEADER = re.compile(r"([\d,]+) clusters at granularity (\d)")
LOOSE = re.compile(r"^Not grouped — ([\d,]+) (images?|objects?)\b")

# crop thumbnails of the App server (started later, with this environment) go to the tests'
# temporary folder, not to the user's FiftyOne config dir
os.environ.setdefault("VISUAL_CURATION_THUMBS_DIR", str(
    Path(os.environ.get("VISUAL_CURATION_LANCEDB_URI", "/tmp/vc-e2e/lancedb")).parent
    / "panel-thumbs"))


# ------------------------------------------------------------------------------------ fixtures

@pytest.fixture(scope="module")
def panel_fm(analysed_fmnist):
    """250 Fashion-MNIST images analysed (all analyses) with the offline demo model."""
    return analysed_fmnist("vc-e2e-panel")


@pytest.fixture(scope="module")
def panel_det(vc_helpers):
    """The shipped detection fixture, its objects analysed in object view."""
    import json

    import fiftyone as fo
    import visual_curation as vc

    root = Path(__file__).resolve().parents[1] / "fixtures" / "detections"
    name = "vc-e2e-panel-det"
    if fo.dataset_exists(name):
        fo.delete_dataset(name)
    ds = fo.Dataset(name)
    ds.persistent = True
    ds.add_samples([
        fo.Sample(filepath=str(root / rec["filepath"]), ground_truth=fo.Detections(detections=[
            fo.Detection(label=d["label"], bounding_box=d["bounding_box"])
            for d in rec["detections"]]))
        for rec in json.loads((root / "detections.json").read_text())])
    vc.analyze(ds, patches_field="ground_truth", label_field="ground_truth", model="demo",
               progress=False)
    yield ds
    vc_helpers.cleanup(ds)


# ------------------------------------------------------------------------------------- helpers

def shot(page, artifacts, name):
    """A screenshot once the grid's tiles and the panel's thumbnails have been drawn."""
    page.wait_for_selector("[data-cy=looker]", timeout=30_000)
    browser.shot(page, artifacts, name, settle_ms=2_000)


def close_panel(page):
    """Closes the panel's tab if it is open (the App server keeps open panels for the next
    page, whatever its dataset)."""
    if page.locator(TAB).count():
        page.locator(f"{TAB} button[title=Close]").first.click()
        page.wait_for_selector(TAB, state="detached", timeout=15_000)


def open_panel(page, expect_cards=True):
    """As a user does: the "+" (New panel) button of the grid's tab bar, then the panel's
    label in the menu. A panel left open by an earlier page of the same App is closed first."""
    close_panel(page)
    page.locator("[data-cy=new-panel-btn]").first.click()
    page.get_by_text(LABEL, exact=True).first.click()
    page.wait_for_selector(PANEL, timeout=30_000)
    if expect_cards:
        page.wait_for_selector(f"{PANEL} img[alt^='cluster ']", timeout=90_000)
        wait_images(page)


def wait_images(page, timeout=30_000):
    """Every thumbnail of the panel is loaded (a real image, not a broken link)."""
    page.wait_for_function(
        """sel => {
            const imgs = [...document.querySelectorAll(sel + " img[alt^='cluster ']")];
            return imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0);
        }""", arg=PANEL, timeout=timeout)


def cards(page):
    """``[(cluster id, count)]`` of the cards on screen, in order."""
    out = []
    for t in page.locator(PANEL).get_by_text(CARD_TITLE).all_inner_texts():
        m = CARD_TITLE.search(t.strip())
        if m:
            out.append((int(m.group(1)), int(m.group(2).replace(",", ""))))
    return out


def not_grouped_card(page):
    """The count of the "Not grouped" card on screen, or None."""
    for t in page.locator(PANEL).get_by_text(LOOSE).all_inner_texts():
        m = LOOSE.search(t.strip())
        if m:
            return int(m.group(1).replace(",", ""))
    return None


def header(page):
    t = page.locator(PANEL).get_by_text(HEADER).first.inner_text()
    m = HEADER.search(t)
    return int(m.group(1).replace(",", "")), int(m.group(2))


def wait_header_level(page, level, timeout=30_000):
    page.wait_for_function(
        """([sel, level]) => {
            const el = document.querySelector(sel);
            return el && new RegExp('clusters at granularity ' + level).test(el.innerText);
        }""", arg=[PANEL, level], timeout=timeout)


def wait_panel_text(page, text, timeout=30_000):
    page.wait_for_function(
        "([sel, text]) => (document.querySelector(sel)?.innerText || '').includes(text)",
        arg=[PANEL, text], timeout=timeout)


def set_knob(page, level, levels=5):
    """Clicks the granularity slider (bottom right) at the mark of ``level``."""
    # the knob is the slider labelled "Granularity" (the health section has sliders too)
    slider = page.locator(f"{PANEL} div").filter(
        has=page.get_by_text("Granularity", exact=True)).filter(
        has=page.locator(".MuiSlider-root")).last.locator(".MuiSlider-root").first
    slider.scroll_into_view_if_needed()
    box = slider.bounding_box()
    x = box["x"] + box["width"] * (level - 1) / (levels - 1)
    x = min(max(x, box["x"] + 2), box["x"] + box["width"] - 2)
    page.mouse.click(x, box["y"] + box["height"] / 2)
    wait_header_level(page, level)
    wait_images(page)


def thumbs_of(page, cluster_id):
    return page.locator(f"{PANEL} img[alt^='cluster {cluster_id} thumbnail']")


# --------------------------------------------------------------------------------------- tests

def test_panel_cards_knob_and_card_click(page, app_url, artifacts, panel_fm):
    from fiftyone import ViewField as F

    ds = panel_fm
    open_dataset(page, app_url, ds.name)
    assert grid_count(page) == len(ds)
    open_panel(page)
    shot(page, artifacts, "panel-1-opened")

    # ≥ 1 card, each with its item count and representative thumbnails
    first = cards(page)
    assert first, "no cluster card"
    n1, level = header(page)
    assert level == 1 and len(first) == min(n1, PAGE_SIZE)
    for cid, count in first:
        assert count == len(ds.match(F("vc_cluster_1") == cid))
        assert thumbs_of(page, cid).count() >= min(4, count)
    assert sum(c for _, c in first) + (not_grouped_card(page) or 0) == len(ds)
    assert page.locator(PANEL).get_by_text("Dataset health").count() == 1
    assert page.locator(f"{PANEL} .js-plotly-plot").count() >= 1, "uniqueness histogram"

    # the knob, right = stricter: more, smaller clusters (the card count changes)
    set_knob(page, 5)
    n5, _ = header(page)
    strict = cards(page)
    assert n5 > n1 and len(strict) == min(n5, PAGE_SIZE) and len(strict) != len(first)
    shot(page, artifacts, "panel-2-knob-stricter")

    # back to level 2, then click a card's thumbnail: the grid shows that cluster
    set_knob(page, 2)
    n2, _ = header(page)
    cid, count = cards(page)[0]
    assert count == len(ds.match(F("vc_cluster_2") == cid))
    thumbs_of(page, cid).first.click()
    wait_grid(page, count)
    wait_panel_text(page, f"showing cluster {cid} (level 2)")
    assert header(page) == (n2, 2), "the cards stay counted on the view they were opened from"
    shot(page, artifacts, "panel-3-card-clicked")

    # "Show all" restores the grid
    page.locator(PANEL).get_by_role("button", name="Show all").click()
    wait_grid(page, len(ds))
    page.wait_for_function(
        "sel => !(document.querySelector(sel)?.innerText || '').includes('showing cluster')",
        arg=PANEL, timeout=30_000)


def test_strict_level_gathers_single_images_in_a_not_grouped_card(page, app_url, artifacts,
                                                                 panel_fm):
    from fiftyone import ViewField as F

    from visual_curation.panels.stored import level_meta

    ds = panel_fm
    meta = level_meta(ds)[5]
    single = meta["singletons"]
    assert single > 0
    open_dataset(page, app_url, ds.name)
    open_panel(page)
    set_knob(page, 5)
    # the header names the level's similarity and offers the single images
    wait_panel_text(page, f"{meta['similarity']:.2f} cosine")
    wait_panel_text(page, f"Not grouped ({single:,})")
    # the real groups come first; the single images are one card, on the last page
    first = cards(page)
    assert first and all(c > 1 for _, c in first), "largest first: real groups first"
    for _ in range(50):
        nxt = page.locator(PANEL).get_by_role("button", name="Next")
        if not_grouped_card(page) is not None or nxt.is_disabled():
            break
        nxt.click()
        page.wait_for_timeout(300)
        wait_images(page)
    page.wait_for_function(
        "([sel, n]) => (document.querySelector(sel)?.innerText || '')"
        ".includes('Not grouped — ' + n)", arg=[PANEL, f"{single:,}"], timeout=30_000)
    assert not_grouped_card(page) == single
    page.get_by_text(LOOSE).first.scroll_into_view_if_needed()
    shot(page, artifacts, "panel-4-not-grouped-card")
    # clicking it shows exactly those images
    page.locator(PANEL).get_by_role("button", name="Show", exact=True).last.click()
    wait_grid(page, single)
    wait_panel_text(page, "showing the items not grouped (level 5)")
    sizes = {c: len(ds.match(F("vc_cluster_5") == c)) for c in ds.distinct("vc_cluster_5")}
    assert sum(1 for n in sizes.values() if n == 1) == single
    shot(page, artifacts, "panel-5-not-grouped-shown")
    page.locator(PANEL).get_by_role("button", name="Show all").click()
    wait_grid(page, len(ds))


def test_panel_object_view_shows_crop_clusters(page, app_url, artifacts, panel_det):
    ds = panel_det
    clustered = sum(1 for sub in ds.values("ground_truth.detections.vc_cluster_1")
                    for c in (sub or []) if c is not None)
    open_dataset(page, app_url, ds.name)
    open_panel(page, expect_cards=False)
    # image view first: the objects were analysed, the images were not -> what to run
    wait_panel_text(page, "Visual Curation: run analyses")
    shot(page, artifacts, "panel-4-image-view-empty-state")
    page.locator(PANEL).get_by_role("radiogroup").get_by_text("Object view", exact=True).click()
    wait_panel_text(page, "objects in view")
    page.wait_for_selector(f"{PANEL} img[alt^='cluster ']", timeout=60_000)
    wait_images(page)
    shown = cards(page)
    assert shown and sum(c for _, c in shown) == clustered
    # thumbnails are crops (small cached JPEGs), not the 256x256 scenes
    srcs = page.locator(f"{PANEL} img[alt^='cluster ']").evaluate_all(
        "imgs => imgs.map(i => [i.getAttribute('src'), i.naturalWidth, i.naturalHeight])")
    assert all("panel-thumbs" in s and s.endswith(".jpg") for s, _, _ in srcs), srcs[:3]
    assert all(max(w, h) <= 96 for _, w, h in srcs)
    shot(page, artifacts, "panel-5-object-view")

    cid, count = shown[0]
    thumbs_of(page, cid).first.click()
    wait_grid(page, count, unit="patches")
    shot(page, artifacts, "panel-6-object-cluster-patches")
