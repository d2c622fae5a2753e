"""The sample panel (sample modal) on a real analysed dataset (offline demo model, real MongoDB
and LanceDB): what it says about a planted copy and a flagged mislabel, run through FiftyOne's
operator API exactly as the App runs a panel, and its Accept and Find similar buttons."""
import json
from types import SimpleNamespace

import pytest
from fiftyone import ViewField as F

import visual_curation as vc
from visual_curation.core.explain import explain_sample

PANEL_URI = "@visual-curation/curation/sample_panel"


@pytest.fixture(scope="module")
def fm(fmnist_small, vc_helpers):
    ds, truth = vc_helpers.load_bench_dataset(fmnist_small, "vc-test-sample-panel")
    vc.analyze(ds, label_field="ground_truth", model="demo", progress=False)
    yield SimpleNamespace(ds=ds, truth=truth)
    vc_helpers.cleanup(ds)


def _panel(ds, current, method="on_load", **params):
    import fiftyone.operators as foo

    ctx = dict(dataset=ds, current_sample=current,
               params={"panel_id": "test-sample-panel", "panel_state": {},
                       "__method__": method, **params})
    res = foo.execute_operator(PANEL_URI, ctx=ctx)
    res.raise_exceptions()
    reqs = res.executor.to_json()["requests"] if res.executor else []
    ops = [(r.get("operator_uri"), r.get("params") or {}) for r in reqs]
    outputs = [p for u, p in ops if u == "show_panel_output"]
    return (json.dumps(outputs[-1], ensure_ascii=False) if outputs else ""), ops


def test_a_copy_is_explained_with_its_group_and_why_the_other_is_kept(fm):
    ds = fm.ds
    copy = ds.match(F("vc_duplicate") == True).first()  # noqa: E712
    info = explain_sample(ds, copy.id)
    group = info["duplicates"]
    assert group and group["kept"] != copy.id and len(group["members"]) >= 2
    assert group["members"][0]["kept"] and group["members"][0]["id"] == group["kept"]
    assert [m["kept"] for m in group["members"]].count(True) == 1
    assert "kept" in group["why"] and "largest resolution" in group["why"]
    dup = next(i for i in info["issues"] if i["issue"] == "duplicate")
    assert dup["flagged"] and "copy" in dup["reason"]
    assert [c["level"] for c in info["clusters"]] == [1, 2, 3, 4, 5]
    for c in info["clusters"]:
        assert c["size"] == len(ds.match(F(f"vc_cluster_{c['level']}") == c["cluster"]))
    text, _ = _panel(ds, copy.id)
    assert "Duplicate group" in text and "a copy to drop" in text
    assert text.count("duplicate kept") == 1 and "Find similar" in text


def test_a_flagged_mislabel_offers_its_suggestion_and_accept_changes_only_it(fm):
    ds = fm.ds
    s = ds.match(F("vc_issues").contains("mislabel")).match(
        F("vc_suggested_label") != F("ground_truth.label")).first()
    info = explain_sample(ds, s.id)
    sug = info["suggestion"]
    assert sug["suggested"] == s.vc_suggested_label and sug["label"] == s.ground_truth.label
    mis = next(i for i in info["issues"] if i["issue"] == "mislabel")
    assert mis["flagged"] and f"'{s.vc_suggested_label}'" in mis["reason"]
    assert info["issues"][0]["flagged"]                      # flagged issues come first
    text, _ = _panel(ds, s.id)
    assert f"Accept '{s.vc_suggested_label}'" in text
    before = {x.id: x.ground_truth.label for x in ds}
    _, ops = _panel(ds, s.id, "on_accept", sample_id=s.id, label_field="ground_truth")
    assert any(u == "reload_samples" for u, _ in ops)
    after = {x.id: x.ground_truth.label for x in ds}
    assert after[s.id] == s.vc_suggested_label
    assert {k: v for k, v in after.items() if k != s.id} == \
        {k: v for k, v in before.items() if k != s.id}
    vc.undo_relabel(ds.select(s.id), "ground_truth", ids=[s.id])
    assert ds[s.id].ground_truth.label == before[s.id]


def test_find_similar_from_the_modal_fills_the_grid(fm):
    ds = fm.ds
    s = ds.first()
    _, ops = _panel(ds, s.id, "on_similar", sample_id=s.id)
    names = [u for u, _ in ops]
    assert "close_sample" in names and "set_view" in names
    from test_operators import built_view

    view = built_view(ds, [p for u, p in ops if u == "set_view"][-1]["view"])
    assert len(view) == 50 and view.first().id == s.id


def test_without_analysis_the_panel_says_what_to_run(fresh_ds):
    text, _ = _panel(fresh_ds, fresh_ds.first().id)
    assert "run analyses" in text


@pytest.fixture()
def fresh_ds(fmnist_small, vc_helpers):
    ds, _ = vc_helpers.load_bench_dataset(fmnist_small, "vc-test-sample-panel-fresh")
    yield ds
    vc_helpers.cleanup(ds)
