"""The health section's data-quality review, executed through FiftyOne's operator API as the
App runs the panel (no browser; the browser test is tests/e2e/test_panel_review.py): a box per
stored issue with its histogram and slider; a slider event re-derives vc_issues and shows the
flagged samples in the grid; Tag flagged and Mark reviewed are remembered."""
from types import SimpleNamespace

import pytest

import fiftyone as fo

import visual_curation as vc
from visual_curation.core.analyzers import ISSUES
from visual_curation.core.review import scored_issues, stored_thresholds

from test_panel import _panel, _texts, clear_caches


@pytest.fixture(scope="module")
def fm(fmnist_small, vc_helpers):
    ds, truth = vc_helpers.load_bench_dataset(fmnist_small, "vc-test-panel-review")
    vc.analyze(ds, label_field="ground_truth", model="demo", progress=False)
    clear_caches()
    yield SimpleNamespace(ds=ds, truth=truth)
    vc_helpers.cleanup(ds)


def _grid(ds, ops):
    sets = [p for u, p in ops if u == "set_view"]
    assert sets, ops
    return fo.DatasetView._build(ds, sets[-1]["view"])


def test_every_stored_issue_has_a_box_and_scored_ones_a_slider(fm):
    clear_caches()
    stored = [n for n, s in ISSUES.items() if fm.ds.has_sample_field(s.field)]
    assert stored
    # behind the "Review issues" switch, off when the panel first opens
    schema, _ = _panel(fm.ds, "on_load")
    blob = _texts(schema)
    assert '"SwitchView"' in blob and "Review issues" in blob
    assert not any(f'"issue_{issue}"' in blob for issue in stored)
    assert blob.count('"SliderView"') == 1                     # the granularity knob
    schema, _ = _panel(fm.ds, "on_review", state={"health": {"review": True}})
    blob = _texts(schema)
    for issue in stored:
        assert f"**{issue}** · **" in blob and f'"issue_{issue}"' in blob
    sliders = [n for n in stored if n in scored_issues()]
    assert blob.count('"SliderView"') == 1 + len(sliders)       # + the granularity knob
    assert blob.count('"PlotlyView"') == 1 + len(sliders)       # + uniqueness


def test_opening_puts_the_slider_values_in_the_state(fm):
    """A slider whose value is missing from the panel state sends a change when first drawn
    (one event and one render per issue): the panel opens with every threshold there."""
    _, ops = _panel(fm.ds, "on_load")
    states = [p.get("state") for u, p in ops if u in ("set_panel_state", "patch_panel_state")]
    health = next(s["health"] for s in states if s and "health" in s)
    th = stored_thresholds(fm.ds)
    scored = [n for n in scored_issues() if fm.ds.has_sample_field(ISSUES[n].field)]
    assert scored
    assert isinstance(health["review"], bool)       # the switch, as last left on this dataset
    assert {k: v["threshold"] for k, v in health.items() if k != "review"} == {
        f"issue_{n}": pytest.approx(th[n]) for n in scored}


def test_slider_event_rederives_and_shows_the_flagged(fm):
    ds = fm.ds
    before = vc.review_state(ds)["mislabel"]["threshold"]
    scores = [v for v in ds.values("vc_mislabel") if v is not None]
    for t in (0.3, 0.9):
        # as the App sends it: the slider's path and value (its state already patched)
        _, ops = _panel(ds, "on_threshold",
                        state={"health": {"issue_mislabel": {"threshold": t}}},
                        path="health.issue_mislabel.threshold", value=t)
        grid = _grid(ds, ops)
        assert len(grid) == sum(v >= t for v in scores)
        assert all("mislabel" in i for i in grid.values("vc_issues"))
        assert vc.review_state(ds)["mislabel"]["threshold"] == t
        assert any(u == "notify" for u, _ in ops)
    # the value a slider is (re)mounted with (the stored threshold) changes nothing
    bright = vc.review_state(ds)["bright"]["threshold"]
    _, ops = _panel(ds, "on_threshold", state={"health": {"issue_bright": {"threshold": bright}}},
                    path="health.issue_bright.threshold", value=round(bright, 2))
    assert not [u for u, _ in ops if u == "set_view"], ops
    assert vc.review_state(ds)["mislabel"]["threshold"] == 0.9
    # without path/value: the slider whose state differs from the stored threshold
    _, ops = _panel(ds, "on_threshold", state={"health": {"issue_mislabel": {"threshold": 0.6}}})
    assert vc.review_state(ds)["mislabel"]["threshold"] == 0.6
    assert len(_grid(ds, ops)) == sum(v >= 0.6 for v in scores)
    patched = {}
    for u, p in ops:
        if u == "patch_panel_state":
            patched.update(p.get("state") or p)
    assert patched["selected"] == {"id": "mislabel", "action": "issue", "mode": "images"}
    schema, _ = _panel(ds, "on_change_view", view=_grid(ds, ops), state={
        k: patched[k] for k in ("applied", "base_view", "selected")})
    assert "grid: flagged mislabel" in _texts(schema) and "Show all" in _texts(schema)
    vc.set_issue_thresholds(ds, {"mislabel": before})


def test_tag_flagged_and_mark_reviewed_buttons(fm):
    ds = fm.ds
    issue = next(n for n, c in vc.review_state(ds).items() if n in scored_issues()
                 and ds.count_values("vc_issues").get(n))
    _, ops = _panel(ds, "on_issue_tag", state={"controls": {"tag": ""}}, issue=issue)
    n = ds.count_values("vc_issues")[issue]
    assert ds.count_sample_tags().get(f"vc_flagged_{issue}") == n
    schema, _ = _panel(ds, "on_issue_reviewed", issue=issue, reviewed=True,
                       state={"health": {"review": True}})
    blob = _texts(schema)
    assert "✓ reviewed at" in blob and f"tagged 'vc_flagged_{issue}' ({n:,})" in blob
    assert vc.review_state(ds)[issue]["reviewed"]["flagged"] == n
    _panel(ds, "on_issue_reviewed", issue=issue, reviewed=False)
    assert vc.review_state(ds)[issue]["reviewed"] is None
    ds.untag_samples(f"vc_flagged_{issue}")
