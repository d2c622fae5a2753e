"""The embedding map in the REAL FiftyOne App (headless Chromium): the "embedding map" operator,
run from the command palette, opens the App's own Embeddings panel on our map coloured by
``vc_cluster_2``; a lasso drawn around part of the map filters the grid to exactly the points
inside it. Every step leaves a screenshot in test-artifacts/ (map-*.png)."""
import numpy as np
import pytest

from . import browser
from .browser import PROMPT, execute, grid_count, open_dataset, open_operator, whole_dataset

pytestmark = [pytest.mark.e2e]

LABEL = "Visual Curation: embedding map"
PANEL = "[data-cy=panel-content-Embeddings]"


@pytest.fixture(scope="module")
def map_fm(tmp_root, vc_helpers):
    """250 Fashion-MNIST images, embedded (demo model) and clustered."""
    import visual_curation as vc

    folder = vc_helpers.make_bench(tmp_root / "e2e250", "fmnist", n=250, seed=2, defects=0.1)
    ds, _ = vc_helpers.load_bench_dataset_persistent(folder, "vc-e2e-map")
    vc.compute_embeddings(ds, model="demo", progress=False)
    vc.analyze(ds, analyses=["clusters"], model="demo", progress=False)
    yield ds
    vc_helpers.cleanup(ds)


def shot(page, artifacts, name):
    browser.shot(page, artifacts, name, settle_ms=1_500)


def test_embeddings_panel_shows_our_map_and_a_lasso_filters_the_grid(page, app_url, artifacts,
                                                                      map_fm):
    ds = map_fm
    open_dataset(page, app_url, ds.name)
    whole_dataset(page, len(ds))
    open_operator(page, LABEL)
    modal = page.locator(PROMPT)
    modal.get_by_text("Colour by cluster level", exact=False).first.wait_for()
    shot(page, artifacts, "map-1-form")
    execute(page)

    # the App's Embeddings panel opens on our run, coloured by vc_cluster_2
    page.wait_for_selector(PANEL, timeout=180_000)
    page.wait_for_function(
        """sel => {
            const t = document.querySelector(sel)?.innerText || '';
            return t.includes('vc_map') && t.includes('vc_cluster_2');
        }""", arg=PANEL, timeout=180_000)
    canvas = page.locator(f"{PANEL} canvas").first
    canvas.wait_for(timeout=60_000)
    try:
        page.get_by_role("button", name="Done").first.click(timeout=5_000)  # the progress bar
    except Exception:  # noqa: BLE001 - already gone
        pass
    shot(page, artifacts, "map-2-panel-coloured-by-cluster")
    ds.reload()   # the run was written by the App server's process
    res = ds.load_brain_results("vc_map")
    assert res.points.shape == (len(ds), 2)
    legend = page.locator(PANEL).first.inner_text()
    assert "VC_CLUSTER_2" in legend.upper()

    # the panel's Select (lasso) mode
    page.locator(PANEL).get_by_role("button", name="Select").first.click()

    # a lasso around the left part of the canvas: the grid shows exactly the points inside
    box = canvas.bounding_box()
    x0, y0, w, h = box["x"], box["y"], box["width"], box["height"]
    poly = [(x0 + 0.05 * w, y0 + 0.05 * h), (x0 + 0.5 * w, y0 + 0.05 * h),
            (x0 + 0.5 * w, y0 + 0.95 * h), (x0 + 0.05 * w, y0 + 0.95 * h)]
    page.mouse.move(*poly[0])
    page.mouse.down()
    for p in poly[1:] + poly[:1]:
        page.mouse.move(*p, steps=12)
    page.mouse.up()
    page.wait_for_function(
        """n => {
            const el = document.querySelector('[data-cy=entry-counts]');
            const m = el && el.innerText.replace(/,/g, '').match(/\\d+/);
            return m && parseInt(m[0]) > 0 && parseInt(m[0]) < n;
        }""", arg=len(ds), timeout=60_000)
    n_sel = grid_count(page)
    shot(page, artifacts, "map-3-lasso-filters-grid")
    assert 0 < n_sel < len(ds)
    # the lasso's right edge is the canvas' middle: the points inside are on the map's left
    xs = np.asarray(res.points)[:, 0]
    assert n_sel <= int((xs < xs.max()).sum())
