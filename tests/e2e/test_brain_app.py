"""The App's own similarity tools on our vectors, in the REAL FiftyOne App (headless Chromium):
the grid's "sort by text similarity" prompt puts sneakers first, and "sort by image
similarity" on a selected sample re-sorts the grid through our index (the view bar names
it). Screenshots in test-artifacts/ (brain-*.png)."""
import pytest

from visual_curation.core.similarity import similar_ids

from .browser import looker_values, open_dataset, open_operator, shot, wait_grid, whole_dataset

pytestmark = [pytest.mark.e2e]

SORT = "[data-cy=action-sort-by-similarity]"


def _labels_in_grid(page, n):
    page.wait_for_function(
        "n => document.querySelectorAll(\"[data-cy=looker] [title^='ground_truth: ']\").length"
        " >= n", arg=n, timeout=90_000)
    return looker_values(page, "ground_truth")[:n]


def _whole_dataset(page, n):
    """The grid of the whole dataset, its tiles drawn."""
    whole_dataset(page, n)
    page.wait_for_selector("[data-cy=looker] canvas[canvas-loaded=true]", timeout=60_000)


def test_app_sorts_by_our_index_from_a_prompt_and_a_selected_sample(page, app_url,
                                                                     e2e_dataset, artifacts):
    ds = e2e_dataset
    assert "vc_demo" in ds.list_brain_runs()
    open_dataset(page, app_url, ds.name)
    _whole_dataset(page, len(ds))   # the App keeps the last view of earlier tests

    # 1. the text prompt of the grid's similarity button (no selection: a prompt)
    page.locator(SORT).click()
    prompt = page.locator("input[placeholder='Type anything!']")
    prompt.wait_for(timeout=30_000)
    shot(page, artifacts, "brain-01-prompt")
    prompt.fill("a photo of a sneaker")
    prompt.press("Enter")
    # FiftyOne's similarity search panel runs the query on our index ("<query> · vc_demo")
    run = page.get_by_text("a photo of a sneaker · vc_demo", exact=False).first
    run.wait_for(timeout=90_000)
    page.get_by_text("Completed").first.wait_for(timeout=90_000)
    shot(page, artifacts, "brain-02-search-panel")
    show = page.locator("button[aria-label='Show results']").first
    show.wait_for(timeout=90_000)
    # (a JS click: the row's drag-and-drop wrapper is aria-disabled, which Playwright's
    # actionability check reads as the button's own state)
    show.evaluate("b => b.click()")                # its results into the grid
    wait_grid(page, 25, timeout=90_000)
    labels = _labels_in_grid(page, 20)
    shot(page, artifacts, "brain-03-prompt-sorted")
    assert sum(lab == "sneaker" for lab in labels) / 20 >= 0.8, labels
    # the same order as our own text search
    truth = dict(zip(ds.values("id"), ds.values("ground_truth.label")))
    expected = [truth[i] for i, _ in similar_ids(ds, text="a photo of a sneaker", k=20)]
    assert labels == expected

    # 2. select a sample → "sort by image similarity" → the grid re-sorted by our vectors
    page.locator("[data-cy^=panel-tab-]", has_text="Similarity Search").first.click(
        button="middle")                           # closes the panel: the grid full width
    _whole_dataset(page, len(ds))
    query_id = ds.values("id")[3]
    fourth = page.locator("[data-cy=looker]").nth(3)
    fourth.hover()
    fourth.locator("input[type=checkbox]").first.evaluate("el => el.click()")  # shown on hover
    page.locator(SORT).click()
    page.get_by_text("Show similar samples", exact=True).click()
    shot(page, artifacts, "brain-04-image-search")
    # the new search is listed first, once both searches are there and completed
    page.wait_for_function(
        "sel => { const t = document.body.innerText;"
        " return t.includes('Image similarity (1 prompt) · vc_demo')"
        " && t.split('Completed').length - 1 >= 2"
        " && document.querySelectorAll(sel).length >= 2; }",
        arg="button[aria-label='Show results']", timeout=90_000)
    page.locator("button[aria-label='Show results']").first.evaluate("b => b.click()")
    wait_grid(page, 25, timeout=90_000)
    expected = [truth[i] for i, _ in similar_ids(ds, sample_id=query_id, k=12)]
    page.wait_for_function(      # the grid switched from the text results to these
        "first => { const e = document.querySelector(\"[data-cy=looker] [title^='ground_truth: ']\");"
        " return e && e.getAttribute('title') === 'ground_truth: ' + first; }",
        arg=expected[0], timeout=90_000)
    labels = _labels_in_grid(page, 12)
    shot(page, artifacts, "brain-05-image-sorted")
    assert labels == expected

    # leave the App as found: no selection, no view, no open search panel
    open_operator(page, "Clear selected samples", form=False)
    page.wait_for_selector("[data-cy=action-manage-selected]", state="detached", timeout=30_000)
    page.locator("[data-cy^=panel-tab-]", has_text="Similarity Search").first.click(
        button="middle")
    _whole_dataset(page, len(ds))
