"""The cluster panel composes with the user's sidebar filters in the REAL App: the knob, the sort
and paging never clear them; "Show" narrows the filtered grid to a cluster (the filters stay in
the sidebar, not folded into a view-bar stage); "Show all" returns to exactly the filtered grid;
clearing the sidebar filters then gives the whole dataset. Screenshots filters-*.png."""
import pytest
from fiftyone import ViewField as F

from .browser import (filter_value, grid_count, open_dataset, open_operator, wait_grid,
                      whole_dataset)
from .test_panel_clusters import (PANEL, cards, close_panel, header, open_panel, set_knob,
                                  shot, thumbs_of, wait_panel_text)

pytestmark = [pytest.mark.e2e]

ISSUE = "dark"


@pytest.fixture(scope="module")
def filtered_fm(analysed_fmnist):
    """250 Fashion-MNIST images with planted defects, every analysis run (demo model)."""
    return analysed_fmnist("vc-e2e-panel-filters")


def view_bar_stages(page):
    """The number of stages in the view bar (the sidebar filters are not stages)."""
    return page.locator("[data-cy=btn-view-stage-delete]").count()


def filters_kept(page, n, what):
    """The grid shows the ``n`` filtered samples once the App has settled after ``what``
    (the App may reload its page state when a panel's state changes, dropping the sidebar
    filters for a moment: the panel puts them back), and still does 3 s later."""
    page.wait_for_timeout(1_000)
    try:
        wait_grid(page, n, timeout=10_000)
        page.wait_for_timeout(3_000)
        assert grid_count(page) == n
    except Exception:  # noqa: BLE001
        raise AssertionError(f"{what} cleared the sidebar filter: the grid shows "
                             f"{grid_count(page)} samples, not {n}") from None


def choose_sort(page, label):
    """The panel's Sort dropdown (the combobox showing a sort's name) set to ``label``."""
    page.locator(PANEL).get_by_role("combobox").filter(has_text="first").first.click()
    page.get_by_role("option", name=label).click()


def test_knob_sort_show_and_show_all_keep_the_sidebar_filters(page, app_url, artifacts,
                                                              filtered_fm):
    ds = filtered_fm
    flagged = ds.match(F("vc_issues").contains(ISSUE))
    n_f = len(flagged)
    assert 2 <= n_f < len(ds)
    open_dataset(page, app_url, ds.name)
    whole_dataset(page, len(ds))
    open_panel(page)
    filter_value(page, "vc_issues", ISSUE)
    wait_grid(page, n_f)
    wait_panel_text(page, f"{n_f:,} images in view")
    shot(page, artifacts, "filters-1-filtered")

    set_knob(page, 4)
    filters_kept(page, n_f, "the knob")
    shot(page, artifacts, "filters-2-knob")

    choose_sort(page, "Most issues first")
    filters_kept(page, n_f, "the sort")
    shot(page, artifacts, "filters-3-sort")

    cid, count = cards(page)[0]
    in_both = len(flagged.match(F("vc_cluster_4") == cid))
    assert count == in_both
    thumbs_of(page, cid).first.click()   # as the card's Show button does
    wait_grid(page, in_both)
    wait_panel_text(page, f"showing cluster {cid} (level 4)")
    shot(page, artifacts, "filters-4-show")
    assert view_bar_stages(page) <= 1, "Show folded the sidebar filters into the view bar"
    assert header(page)[1] == 4

    page.locator(PANEL).get_by_role("button", name="Show all").click()
    wait_grid(page, n_f)
    page.wait_for_timeout(1_000)
    assert view_bar_stages(page) == 0
    shot(page, artifacts, "filters-5-show-all")

    # clearing the sidebar filters, as a user does, gives the whole dataset again
    open_operator(page, "Clear sidebar filters", form=False)
    wait_grid(page, len(ds))
    page.wait_for_timeout(3_000)
    assert grid_count(page) == len(ds), "the panel put back filters the user cleared"
