"""The plugin in the REAL FiftyOne App, driven in headless Chromium: the command palette lists the
operators, their forms explain what is missing, "run analyses" makes ``vc_issues`` appear in the
sidebar, filtering it by "dark" leaves exactly the dark images in the grid, and a text search
re-sorts the grid by CLIP similarity. Every step leaves a screenshot in test-artifacts/."""
import pytest
from fiftyone import ViewField as F

from .browser import (PALETTE_INPUT, PROMPT, blur, execute, looker_values, open_dataset,
                      open_operator, shot, show_field, wait_executable, wait_grid)

pytestmark = [pytest.mark.e2e]

LABELS = {
    "compute_embeddings": "Visual Curation: compute embeddings",
    "run_analyses": "Visual Curation: run analyses",
    "find_similar": "Visual Curation: find similar",
    "text_search": "Visual Curation: text search",
    "select_uniques": "Visual Curation: select unique samples",
    "clean_dataset": "Visual Curation: clean dataset",
    "find_leakage": "Visual Curation: find split leakage",
    "delete_run": "Visual Curation: delete results",
}


# ------------------------------------------------------------------------------------ tests

def test_command_palette_lists_every_operator(page, app_url, e2e_dataset, artifacts):
    open_dataset(page, app_url, e2e_dataset.name)
    shot(page, artifacts, "01-dataset")
    blur(page)
    page.keyboard.press("`")
    page.wait_for_selector(PALETTE_INPUT)
    page.keyboard.type("Visual Curation")
    for label in LABELS.values():
        page.get_by_text(label, exact=True).first.wait_for(timeout=15_000)
    shot(page, artifacts, "02-command-palette")
    page.keyboard.press("Escape")


def test_forms_explain_what_is_missing(page, app_url, e2e_empty_dataset, artifacts):
    open_dataset(page, app_url, e2e_empty_dataset.name)
    open_operator(page, LABELS["run_analyses"])
    modal = page.locator(PROMPT)
    modal.get_by_text("No embeddings on this dataset yet", exact=False).first.wait_for()
    assert "compute embeddings" in modal.inner_text()
    assert modal.get_by_role("button", name="Execute").is_disabled()
    shot(page, artifacts, "03-form-explains-missing-embeddings")


def test_analyse_filter_dark_and_text_search(page, app_url, e2e_dataset, artifacts):
    ds = e2e_dataset
    n = len(ds)
    open_dataset(page, app_url, ds.name)
    wait_grid(page, n)

    # 1. run analyses from the command palette
    open_operator(page, LABELS["run_analyses"])
    modal = page.locator(PROMPT)
    modal.get_by_text("Label field", exact=True).first.wait_for()
    modal.get_by_text("Thresholds for vc_issues", exact=True).first.wait_for()
    delegate = modal.get_by_text("Delegate", exact=True).first
    delegate.scroll_into_view_if_needed()  # "Execution: Run now / Delegate" ends the form
    wait_executable(page)
    page.wait_for_timeout(500)
    shot(page, artifacts, "04-run-analyses-form")
    execute(page)
    done = page.get_by_role("button", name="Done", exact=True)
    done.wait_for(timeout=240_000)  # the progress dialog of the generator, at 100 %
    page.wait_for_selector("[data-cy=sidebar-field-vc_issues]", timeout=60_000)
    page.wait_for_selector("[data-cy=looker] canvas[canvas-loaded=true]", timeout=60_000)
    shot(page, artifacts, "05-analysed-progress-done")
    done.click()
    done.wait_for(state="detached", timeout=15_000)
    page.locator("[data-cy=sidebar-field-vc_issues]").scroll_into_view_if_needed()
    shot(page, artifacts, "06-vc-issues-in-sidebar")
    ds.reload()
    assert ds.has_sample_field("vc_issues") and ds.has_sample_field("vc_dark")
    n_dark = len(ds.match(F("vc_issues").contains("dark")))
    planted = ds.match(F("bench_truth_kind") == "dark")
    assert n_dark >= len(planted) - 1 > 0

    # 2. sidebar filter vc_issues = dark → exactly the dark images
    page.locator("[data-cy=sidebar-field-arrow-enabled-vc_issues]").click()
    search = page.locator("[data-cy=selector-sidebar-search-vc_issues]")
    search.click()
    search.type("dark")
    page.locator("[data-cy=selector-results-container-sidebar-search-vc_issues]").get_by_text(
        "dark", exact=True).click()
    wait_grid(page, n_dark)
    show_field(page, "vc_dark")
    show_field(page, "bench_truth_kind")
    page.wait_for_function(
        "n => document.querySelectorAll(\"[data-cy=looker] [title^='vc_dark: ']\").length === n",
        arg=n_dark, timeout=30_000)
    scores = [float(v) for v in looker_values(page, "vc_dark")]
    kinds = looker_values(page, "bench_truth_kind")
    shot(page, artifacts, "07-filtered-vc-issues-dark")
    assert len(scores) == n_dark and min(scores) >= 0.5
    assert kinds.count("dark") >= len(planted) - 1

    # 3. text search (the whole dataset) → the grid re-sorted by CLIP similarity
    open_operator(page, "Clear sidebar filters", form=False)
    wait_grid(page, n)
    open_operator(page, LABELS["text_search"])
    modal = page.locator(PROMPT)
    modal.locator("input").first.fill("a photo of a sneaker")
    k_input = modal.locator("input").nth(1)
    k_input.fill("24")
    wait_executable(page)
    page.wait_for_timeout(500)  # the field's own validation message catches up
    shot(page, artifacts, "08-text-search-form")
    before = ds.values("last_modified_at")
    execute(page)
    wait_grid(page, 24)
    # the App's own similarity sort (a view-bar stage), a toast saying how good the match is,
    # and nothing written on the samples
    page.get_by_text("Good match for 'a photo of a sneaker'").first.wait_for(timeout=30_000)
    page.wait_for_function(
        "() => document.querySelectorAll(\"[data-cy=looker] [title^='ground_truth: ']\")"
        ".length >= 12", timeout=30_000)
    labels = looker_values(page, "ground_truth")
    shot(page, artifacts, "09-text-search-sorted")
    assert page.locator("[data-cy=btn-view-stage-delete]").count() == 1
    assert page.locator("[data-cy=sidebar-field-container-vc_similarity]").count() == 0
    ds.reload()
    assert ds.values("last_modified_at") == before and not ds.has_sample_field("vc_similarity")
    assert labels.count("sneaker") > len(labels) // 2, labels
