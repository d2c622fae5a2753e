"""Clean dataset in the REAL App (headless Chromium): the form says beforehand how many samples
are kept and dropped, per reason; the saved-view path lands on the saved view with no error and
says the counts again; the new-dataset path opens the clone, on which the cluster panel shows
its clusters at once (the analysis came with it). Screenshots clean-*.png."""
import pytest

from .browser import PROMPT, execute, open_dataset, open_operator, shot, wait_grid, whole_dataset
from .test_panel_clusters import PANEL, close_panel, open_panel

pytestmark = [pytest.mark.e2e]

LABEL = "Visual Curation: clean dataset"
DATASET = "vc-e2e-clean"
VIEW_NAME = "clean"                   # the form's defaults
CLONE = f"{DATASET}-clean"


@pytest.fixture(scope="module")
def cleanable(analysed_fmnist):
    """250 Fashion-MNIST images with planted duplicates and defects, every analysis run."""
    import fiftyone as fo
    import visual_curation as vc

    yield analysed_fmnist(DATASET)
    if fo.dataset_exists(CLONE):
        vc.delete_run(fo.load_dataset(CLONE))
        fo.delete_dataset(CLONE)


def test_clean_dataset_to_a_saved_view_then_to_a_new_dataset(page, app_url, artifacts,
                                                              cleanable):
    from visual_curation.core.curation import clean_counts, counts_text

    ds = cleanable
    counts = clean_counts(ds, True, [])
    assert 0 < counts["dropped"] < counts["total"]
    open_dataset(page, app_url, ds.name)
    whole_dataset(page, len(ds))

    # 1. a saved view: the preview before, the same counts after, the grid on the view
    open_operator(page, LABEL)
    page.locator(PROMPT).get_by_text(counts_text(counts)).wait_for(timeout=30_000)
    shot(page, artifacts, "clean-1-form-preview")
    execute(page)
    wait_grid(page, counts["kept"])
    # the same counts after the run, in the operator's output (a toast also says them)
    done = f"Saved view '{VIEW_NAME}': {counts_text(counts)}"
    page.locator(PROMPT).get_by_text(done).wait_for(timeout=30_000)
    assert page.get_by_text("does not exist").count() == 0
    shot(page, artifacts, "clean-2-saved-view")
    page.locator(PROMPT).get_by_role("button", name="Close").click()
    ds.reload()
    assert ds.has_saved_view(VIEW_NAME)
    assert len(ds.load_saved_view(VIEW_NAME)) == counts["kept"]

    # 2. a new dataset: the App opens it, and the cluster panel works on it at once
    page.locator("[data-cy=btn-clear-view-bar]").click()
    wait_grid(page, len(ds))
    open_operator(page, LABEL)
    page.locator(PROMPT).get_by_text("A new dataset (clone of the kept samples)").click()
    page.locator(PROMPT).get_by_text("New dataset name").wait_for(timeout=15_000)
    page.wait_for_timeout(500)
    shot(page, artifacts, "clean-3-form-new-dataset")
    execute(page)
    page.wait_for_url(f"**/datasets/{CLONE}**", timeout=60_000)
    wait_grid(page, counts["kept"])
    page.locator(PROMPT).get_by_text(
        f"New dataset '{CLONE}', with the analysis: {counts_text(counts)}").wait_for(
        timeout=30_000)
    page.locator(PROMPT).get_by_role("button", name="Close").click()
    open_panel(page)
    assert page.locator(PANEL).get_by_text("Nothing computed yet").count() == 0
    shot(page, artifacts, "clean-4-new-dataset-panel")
    close_panel(page)
