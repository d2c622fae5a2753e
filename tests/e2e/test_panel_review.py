"""The data-quality review of the cluster panel's health section in the REAL FiftyOne App
(headless Chromium): each issue shows a histogram of its confidence and a threshold slider;
moving the mislabel slider re-derives vc_issues (no analysis runs), changes the flagged count
shown, and puts the flagged samples in the grid; moving it again changes both. Screenshots in
test-artifacts/ (review-*.png)."""
import re
import time

import pytest

from .browser import grid_count, open_dataset, wait_grid, whole_dataset
from .test_panel_clusters import PANEL, open_panel, shot, wait_panel_text

pytestmark = [pytest.mark.e2e]

FLAGGED = re.compile(r"mislabel · ([\d,]+) flagged")


@pytest.fixture(scope="module")
def review_fm(analysed_fmnist):
    """250 Fashion-MNIST images with planted defects, all analyses (demo model)."""
    return analysed_fmnist("vc-e2e-review")


def shown_flagged(page):
    m = FLAGGED.search(page.locator(PANEL).inner_text())
    return int(m.group(1).replace(",", "")) if m else None


def mislabel_slider(page):
    """The slider of the mislabel box (the box whose title starts with "mislabel")."""
    box = page.locator(f"{PANEL} div").filter(
        has=page.get_by_text(FLAGGED)).filter(has=page.locator(".MuiSlider-root")).last
    return box.locator(".MuiSlider-root").first


def move(page, slider, value):
    slider.scroll_into_view_if_needed()
    b = slider.bounding_box()
    page.mouse.click(b["x"] + b["width"] * value, b["y"] + b["height"] / 2)


def wait_threshold(ds, old, timeout=60):
    import visual_curation as vc

    t0 = time.time()
    while time.time() - t0 < timeout:
        ds.reload()  # the run record was changed by the App server's process
        t = vc.review_state(ds)["mislabel"]["threshold"]
        if t != old:
            return t
        time.sleep(0.5)
    raise AssertionError(f"the mislabel threshold stayed at {old}")


def flagged_in_db(ds):
    return ds.count_values("vc_issues").get("mislabel", 0)


def test_threshold_slider_changes_the_flagged_count_and_the_grid(page, app_url, artifacts,
                                                                  review_fm):
    import visual_curation as vc

    ds = review_fm
    scores_before = ds.values("vc_mislabel")
    open_dataset(page, app_url, ds.name)
    whole_dataset(page, len(ds))
    open_panel(page)
    assert shown_flagged(page) is None          # the issue boxes wait for the switch
    page.locator(PANEL).get_by_text("Review issues", exact=True).first.click()
    wait_panel_text(page, "mislabel · ")
    page.wait_for_selector(f"{PANEL} .js-plotly-plot", timeout=30_000)
    n0 = shown_flagged(page)
    assert n0 == flagged_in_db(ds)
    n_sliders = page.locator(f"{PANEL} .MuiSlider-root").count()
    assert n_sliders >= 1 + 5, "one slider per scored issue + the granularity knob"
    assert page.locator(f"{PANEL} .js-plotly-plot").count() >= 1 + 5, "a histogram per issue"
    shot(page, artifacts, "review-1-health-section")

    # strict: fewer flagged; the grid shows exactly them
    slider = mislabel_slider(page)
    move(page, slider, 0.9)
    t1 = wait_threshold(ds, 0.5)
    n1 = flagged_in_db(ds)
    assert t1 > 0.8 and n1 == sum(1 for v in scores_before if v is not None and v >= t1)
    wait_grid(page, n1)
    page.wait_for_function(
        "([sel, n]) => new RegExp('mislabel · ' + n + ' flagged').test("
        "document.querySelector(sel)?.innerText || '')", arg=[PANEL, f"{n1:,}"],
        timeout=30_000)
    assert shown_flagged(page) == n1 < n0
    wait_panel_text(page, "grid: flagged mislabel")
    shot(page, artifacts, "review-2-threshold-strict")

    # loose: more flagged, the grid changes again
    move(page, mislabel_slider(page), 0.2)
    t2 = wait_threshold(ds, t1)
    n2 = flagged_in_db(ds)
    assert t2 < 0.3 and n2 > n0
    wait_grid(page, n2)
    page.wait_for_function(
        "([sel, n]) => new RegExp('mislabel · ' + n + ' flagged').test("
        "document.querySelector(sel)?.innerText || '')", arg=[PANEL, f"{n2:,}"],
        timeout=30_000)
    assert grid_count(page) == n2 != n1
    assert ds.values("vc_mislabel") == scores_before, "no analysis ran"
    shot(page, artifacts, "review-3-threshold-loose")

    # "Show all" restores the grid
    page.locator(PANEL).get_by_role("button", name="Show all").click()
    wait_grid(page, len(ds))
    vc.set_issue_thresholds(ds, {"mislabel": 0.5})
