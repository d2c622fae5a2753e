"""The sample panel in the REAL App's sample modal (headless Chromium): opened from the modal's
"+" tab on a planted copy, it shows the sample's issues with their reasons, its duplicate group
with the kept image named, and its clusters; **Find similar** closes the modal and fills the grid
with the nearest samples. Screenshots sample-panel-*.png."""
import pytest
from fiftyone import ViewField as F

from .browser import open_dataset, shot, wait_grid, whole_dataset

pytestmark = [pytest.mark.e2e]

LABEL = "Visual Curation: this sample"
PANEL = "[data-cy=panel-content-sample_panel]"


@pytest.fixture(scope="module")
def analysed_fm(analysed_fmnist):
    return analysed_fmnist("vc-e2e-sample-panel")


def test_the_modal_panel_explains_a_copy_and_finds_similar(page, app_url, artifacts,
                                                           analysed_fm):
    ds = analysed_fm
    copy = ds.match(F("vc_duplicate") == True).first()  # noqa: E712
    open_dataset(page, app_url, ds.name)
    whole_dataset(page, len(ds))
    page.goto(f"{app_url}/datasets/{ds.name}?id={copy.id}")      # the sample's modal
    page.wait_for_selector("[data-cy=modal]", timeout=60_000)
    tab = page.locator("[data-cy=modal] [data-cy=panel-tab-sample_panel]")
    if tab.count():                                   # the modal lists it as a tab already
        tab.first.click()
    else:
        page.locator("[data-cy=modal] [data-cy=new-panel-btn]").first.click()
        page.get_by_text(LABEL, exact=True).first.click()
    page.wait_for_selector(PANEL, timeout=30_000)
    panel = page.locator(PANEL)
    panel.get_by_text("Duplicate group", exact=False).first.wait_for(timeout=30_000)
    text = panel.inner_text()
    assert "a copy to drop" in text and "duplicate" in text and "Clusters" in text
    assert panel.locator("img[alt^='duplicate kept']").count() == 1
    shot(page, artifacts, "sample-panel-1-copy", settle_ms=1_000)

    panel.get_by_role("button", name="Find similar").click()
    page.wait_for_selector("[data-cy=modal]", state="detached", timeout=30_000)
    wait_grid(page, 50)
    shot(page, artifacts, "sample-panel-2-similar")
    page.locator("[data-cy=btn-clear-view-bar]").click()
    wait_grid(page, len(ds))
