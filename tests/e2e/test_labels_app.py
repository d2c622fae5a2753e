"""Fixing labels in the REAL App: filter the sidebar to the flagged mislabels, "accept suggested
labels" → the grid's labels become the suggestions; "undo relabel" → they are back. Then label
propagation on a partly labelled dataset: "propagate labels" → the grid shows the least
confident batch → "accept propagated labels" → the batch's labels are filled. Screenshots in
test-artifacts/."""
import numpy as np
import pytest
from fiftyone import ViewField as F

from e2e.browser import (PROMPT, execute, filter_value, looker_values, open_dataset,
                         open_operator, shot, wait_grid)

pytestmark = [pytest.mark.e2e]


@pytest.fixture()
def mislabelled(tmp_root, vc_helpers):
    import visual_curation as vc

    folder = vc_helpers.make_bench(tmp_root / "e2e-labels", "fmnist", n=160, seed=6, noise=0.08)
    ds, _ = vc_helpers.load_bench_dataset_persistent(folder, "vc-e2e-labels")
    vc.compute_embeddings(ds, model="demo", progress=False)
    vc.analyze(ds, label_field="ground_truth", analyses=["mislabels"], progress=False)
    yield ds
    vc_helpers.cleanup(ds)


@pytest.fixture()
def partly_labelled(tmp_root, vc_helpers):
    import visual_curation as vc

    folder = vc_helpers.make_bench(tmp_root / "e2e-prop", "fmnist", n=200, seed=8, noise=0.0,
                                   dups=0.0, defects=0.0, outliers=0.0)
    ds, _ = vc_helpers.load_bench_dataset_persistent(folder, "vc-e2e-propagation")
    ids, labels = ds.values(["id", "ground_truth.label"])
    rng = np.random.default_rng(8)
    keep = set()
    for c in sorted(set(labels)):
        mine = [i for i, lab in zip(ids, labels) if lab == c]
        keep.update(rng.choice(mine, 3, replace=False).tolist())
    ds.select([i for i in ids if i not in keep]).set_field("ground_truth", None).save()
    vc.compute_embeddings(ds, model="demo", progress=False)
    yield ds
    vc_helpers.cleanup(ds)


def _grid_labels(page, n):
    page.wait_for_function(
        "n => document.querySelectorAll(\"[data-cy=looker] [title^='ground_truth: ']\")"
        ".length >= n", arg=n, timeout=30_000)
    return sorted(looker_values(page, "ground_truth"))


def _wait_labels(page, want, timeout=30_000):
    page.wait_for_function(
        """want => {
            const got = [...document.querySelectorAll("[data-cy=looker] [title^='ground_truth: ']")]
                .map(e => e.getAttribute('title').split(': ')[1]).sort();
            return JSON.stringify(got) === JSON.stringify(want);
        }""", arg=want, timeout=timeout)


def _wait_db(check, timeout=30):
    import time

    t = time.time()
    while not check():
        assert time.time() - t < timeout, "the operator did not change the dataset"
        time.sleep(0.5)


def test_accept_suggestions_then_undo_in_the_app(page, app_url, artifacts, mislabelled):
    ds = mislabelled
    flagged = ds.match(F("vc_issues").contains("mislabel"))
    n = len(flagged)
    assert n
    before = sorted(flagged.values("ground_truth.label"))
    suggested = sorted(flagged.values("vc_suggested_label"))
    assert before != suggested
    open_dataset(page, app_url, ds.name)
    filter_value(page, "vc_issues", "mislabel")
    wait_grid(page, n)                             # labels are shown by default
    assert _grid_labels(page, n) == before
    shot(page, artifacts, "labels-01-flagged-mislabels")

    open_operator(page, "Visual Curation: accept suggested labels")
    modal = page.locator(PROMPT)
    modal.get_by_text("labels will change", exact=False).first.wait_for()
    shot(page, artifacts, "labels-02-accept-form")
    execute(page)
    _wait_db(lambda: sorted(flagged.values("ground_truth.label")) == suggested)
    wait_grid(page, n)                 # the grid shows the changed samples
    _wait_labels(page, suggested)
    shot(page, artifacts, "labels-03-accepted")

    open_operator(page, "Visual Curation: undo relabel")
    page.locator(PROMPT).get_by_text("changed labels", exact=False).first.wait_for()
    shot(page, artifacts, "labels-04-undo-form")
    execute(page)
    _wait_db(lambda: sorted(flagged.values("ground_truth.label")) == before)
    _wait_labels(page, before)
    shot(page, artifacts, "labels-05-undone")
    open_operator(page, "Clear sidebar filters", form=False)   # leave no filter behind


def test_propagate_review_and_accept_in_the_app(page, app_url, artifacts, partly_labelled):
    ds = partly_labelled
    n_examples = ds.count("ground_truth")
    open_dataset(page, app_url, ds.name)
    wait_grid(page, len(ds))
    open_operator(page, "Visual Curation: propagate labels")
    page.locator(PROMPT).get_by_text(f"{n_examples} examples of 10 classes",
                                     exact=False).first.wait_for()
    shot(page, artifacts, "labels-06-propagate-form")
    execute(page)
    wait_grid(page, 50, timeout=120_000)        # the least confident batch
    shot(page, artifacts, "labels-07-first-batch")
    ds.reload()                                      # the field was added by the App server
    assert ds.count("vc_propagated") == len(ds) - n_examples

    open_operator(page, "Visual Curation: accept propagated labels")
    page.locator(PROMPT).get_by_text("empty labels are filled", exact=False).first.wait_for()
    execute(page)
    _wait_db(lambda: ds.count("ground_truth") == n_examples + 50)
    assert ds.count_label_tags().get("vc_propagated") == 50
    wait_grid(page, 50)
    shot(page, artifacts, "labels-08-accepted-next-batch")
    assert not set(ds.match(F("ground_truth.tags").contains("vc_propagated")).values("id")) & \
        set(ds.match(~F("ground_truth").exists()).values("id"))
