"""Data-quality review (core/review.py): thresholds moved after the analysis re-derive
``vc_issues`` from the stored scores, exactly as a full run with those thresholds would, reading
and writing only the samples in the moved band; tags and review marks are remembered on the
run record; nothing of the user's is touched."""
import numpy as np
import pytest

from fiftyone import ViewField as F

import visual_curation as vc
from visual_curation.core import runs as vcr
from visual_curation.core import review as vcrev
from visual_curation.core.analyze import DESCRIPTIONS, FIELD_TYPES, analysis_run_key
from visual_curation.core.analyzers import DEFAULT_THRESHOLD, ISSUES
from visual_curation.core.fields import set_sample_values
from visual_curation.core.issues import issue_lists


def expected(ds, thresholds):
    """``vc_issues`` as a full run derives it: every issue, brute force over every sample."""
    fields = [s.field for s in ISSUES.values() if ds.has_sample_field(s.field)]
    cols = dict(zip(fields, ds.values(fields)))
    return issue_lists(cols, {**{k: DEFAULT_THRESHOLD for k in ISSUES}, **thresholds},
                       range(len(ds)))[0]


@pytest.fixture()
def scored(request):
    """2,000 samples with stored scores of every issue (some missing, some NaN-free None) and
    ``vc_issues`` at 0.5, a run record as analyze leaves it, a user field and user tags."""
    import fiftyone as fo

    name = f"vc-test-review-{request.node.name}"[:100]
    if fo.dataset_exists(name):
        fo.delete_dataset(name)
    ds = fo.Dataset(name)
    n = 2000
    rng = np.random.default_rng(0)
    ds.add_samples([fo.Sample(filepath=f"/nowhere/{i}.jpg", tags=["mine"] if i % 7 == 0
                              else [], my_score=float(i)) for i in range(n)])
    cols = {}
    for s in ISSUES.values():
        if s.flag:
            cols[s.field] = (rng.random(n) < 0.05).tolist()
        else:
            v = rng.random(n).round(4)
            cols[s.field] = [None if rng.random() < 0.05 else float(x) for x in v]
    th = {k: DEFAULT_THRESHOLD for k in ISSUES}
    cols["vc_issues"] = issue_lists(cols, th, range(n))[0]
    set_sample_values(ds, cols, descriptions=DESCRIPTIONS, types=FIELD_TYPES)
    vcr.save(ds, analysis_run_key(None), vcr.METHOD_ANALYSIS,
             dict(fingerprint="f", basis="b", analyses=["quality"], thresholds=th),
             results=dict(summary=dict(items=n)))
    yield ds
    ds.delete()


def test_thresholds_rederive_exactly_the_moved_band(scored):
    ds = scored
    before = ds.values("vc_issues")
    mine = (ds.values("tags"), ds.values("my_score"))
    scores = ds.values("vc_mislabel")
    out = vc.set_issue_thresholds(ds, {"mislabel": 0.7})
    assert ds.values("vc_issues") == expected(ds, {"mislabel": 0.7})
    # only the samples with 0.5 <= vc_mislabel < 0.7 were read and rewritten
    band = sum(1 for v in scores if v is not None and 0.5 <= v < 0.7)
    assert out["changed"] == band > 0
    changed = sum(a != b for a, b in zip(before, ds.values("vc_issues")))
    assert changed == band
    assert out["issues"]["mislabel"] == sum(1 for v in scores if v is not None and v >= 0.7)
    assert out["thresholds"]["mislabel"] == 0.7 and out["thresholds"]["blur"] == 0.5
    assert (ds.values("tags"), ds.values("my_score")) == mine      # the user's, untouched
    assert ds.values("vc_mislabel") == scores                      # no score recomputed

    # several at once, down and up; issues not named keep their threshold
    vc.set_issue_thresholds(ds, {"blur": 0.2, "dark": 0.95, "outlier": 0.0})
    th = {"mislabel": 0.7, "blur": 0.2, "dark": 0.95, "outlier": 0.0}
    assert ds.values("vc_issues") == expected(ds, th)
    assert vc.review_state(ds)["mislabel"]["threshold"] == 0.7
    # back to the defaults: the lists are the original ones again
    vc.set_issue_thresholds(ds, {k: 0.5 for k in vcrev.scored_issues()})
    assert ds.values("vc_issues") == before
    # same thresholds again: nothing read, nothing written
    assert vc.set_issue_thresholds(ds, {"mislabel": 0.5})["changed"] == 0


def test_an_interrupted_rederivation_is_finished_by_the_next_call(scored):
    """The moved bands are kept on the run record until the write is done: a write cut short
    (here: half of the band 0.5 -> 0.9 rewritten, the record still at 0.5) is completed by the
    next move, to any threshold. NaN scores flag nothing, as in a full run."""
    from visual_curation.core.issues import rederive_in_bands

    ds = scored
    nan_ids = ds.match(F("vc_mislabel") < 0.5).take(20, seed=1).values("id")   # not flagged
    ds.select(nan_ids).set_values("vc_mislabel", [float("nan")] * 20)
    present = [s.field for s in ISSUES.values()]
    th = {**vcrev.stored_thresholds(ds), "mislabel": 0.9}
    conf = vcr.load_config(ds, analysis_run_key(None))
    vcr.update_config(ds, analysis_run_key(None),
                      dict(conf, **{vcrev.PENDING: {"mislabel": [0.5, 0.9]}}))
    assert rederive_in_bands(ds, present, th, {"mislabel": (0.7, 0.9)}) > 0   # then killed
    assert ds.values("vc_issues") != expected(ds, {"mislabel": 0.5})
    out = vc.set_issue_thresholds(ds, {"mislabel": 0.6})
    assert ds.values("vc_issues") == expected(ds, {"mislabel": 0.6})
    assert vcrev.PENDING not in vcr.load_config(ds, analysis_run_key(None))
    scores = [v for v in ds.values("vc_mislabel") if v is not None and v == v]
    assert out["issues"]["mislabel"] == sum(v >= 0.6 for v in scores)
    vc.set_issue_thresholds(ds, {"mislabel": 0.0})                 # every number, not NaN
    assert ds.values("vc_issues") == expected(ds, {"mislabel": 0.0})
    assert not any("mislabel" in (i or []) for i in ds.select(nan_ids).values("vc_issues"))


def test_thresholds_checked(scored):
    with pytest.raises(ValueError, match="yes/no flag"):
        vc.set_issue_thresholds(scored, {"duplicate": 0.3})
    with pytest.raises(ValueError, match="Unknown issue 'blurry'"):
        vc.set_issue_thresholds(scored, {"blurry": 0.3})
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        vc.set_issue_thresholds(scored, {"blur": 1.5})


def test_no_analysis_yet_says_so():
    import fiftyone as fo

    ds = fo.Dataset()
    ds.add_sample(fo.Sample(filepath="/nowhere/a.jpg"))
    try:
        with pytest.raises(ValueError, match="run vc.analyze first"):
            vc.set_issue_thresholds(ds, {"blur": 0.3})
        assert vc.review_state(ds) == {}
    finally:
        ds.delete()


def test_tag_flagged_and_mark_reviewed_are_remembered(scored):
    ds = scored
    vc.set_issue_thresholds(ds, {"blur": 0.8})
    view = ds.skip(100)
    done = vc.tag_flagged(view, "blur")
    flagged = vc.flagged_view(view, "blur")
    assert done["tag"] == "vc_flagged_blur" and done["count"] == len(flagged) > 0
    assert set(ds.match_tags("vc_flagged_blur").values("id")) == set(flagged.values("id"))
    assert len(ds.match_tags("mine")) == len(range(0, 2000, 7))    # the user's tags kept
    blur = flagged.values("vc_blur")
    assert blur == sorted(blur, reverse=True) and min(blur) >= 0.8  # most confident first
    vc.mark_reviewed(ds, "blur")
    st = vc.review_state(ds)["blur"]
    assert st["reviewed"]["threshold"] == 0.8 and st["tagged"]["count"] == done["count"]
    assert st["reviewed"]["flagged"] == vcrev.flagged_counts(ds)["blur"]
    assert vc.review_state(ds)["duplicate"]["flag"] is True
    # the marks survive a threshold change (same run), and can be removed
    vc.set_issue_thresholds(ds, {"blur": 0.6})
    assert vc.review_state(ds)["blur"]["reviewed"] is not None
    vc.mark_reviewed(ds, "blur", reviewed=False)
    assert vc.review_state(ds)["blur"]["reviewed"] is None
    assert vc.review_state(ds)["blur"]["tagged"]["tag"] == "vc_flagged_blur"


def test_histograms_count_every_scored_sample(scored):
    ds = scored
    h = vcrev.issue_histograms(ds)
    assert set(h) == set(ISSUES)
    m = ds.values("vc_mislabel")
    assert h["mislabel"]["scored"] == sum(v is not None for v in m)
    assert sum(h["mislabel"]["counts"][14:]) == sum(1 for v in m if v is not None and v >= 0.7)
    assert h["duplicate"] == dict(flag=True, count=sum(ds.values("vc_duplicate")), scored=2000)
    sub = vcrev.issue_histograms(ds.limit(100))
    assert sub["mislabel"]["scored"] <= 100


@pytest.mark.slow
def test_review_after_a_real_analysis(fmnist_dataset):
    """On a real run: equal to a full run with the same thresholds; analyze() afterwards keeps
    the thresholds and is a no-op (no re-analysis)."""
    ds, _ = fmnist_dataset
    vc.compute_embeddings(ds, model="demo", progress=False)
    vc.analyze(ds, label_field="ground_truth", progress=False)
    th = {"mislabel": 0.8, "outlier": 0.3, "blur": 0.7}
    out = vc.set_issue_thresholds(ds, th)
    quick = ds.values("vc_issues")
    again = vc.analyze(ds, label_field="ground_truth", progress=False)
    assert again.get("skipped") and again["issues"] == out["issues"]
    full = vc.analyze(ds, label_field="ground_truth", thresholds=th, force=True, progress=False)
    assert ds.values("vc_issues") == quick
    assert {k: v for k, v in full["issues"].items()} == out["issues"]


REVIEW_API = (vc.set_issue_thresholds, vc.tag_flagged, vc.mark_reviewed, vc.review_state,
              vc.flagged_view)


@pytest.mark.parametrize("fn", REVIEW_API)
def test_review_api_is_keyword_only_typed_and_documented(fn):
    import inspect

    params = list(inspect.signature(fn).parameters.values())
    positional = [p.name for p in params if p.kind is not p.KEYWORD_ONLY]
    assert len(positional) <= 2, (fn.__name__, positional)
    assert all(p.annotation is not inspect.Parameter.empty for p in params[1:]), fn.__name__
    if fn in REVIEW_API[:3]:
        assert "Example::" in fn.__doc__


def test_docstring_examples_run(scored):
    from test_api import _example

    ns = {"dataset": scored}
    for fn in REVIEW_API[:3]:
        exec(compile(_example(fn), f"{fn.__name__} docstring", "exec"), ns)
    assert len(ns["view"]) == ns["summary"]["issues"]["mislabel"]
    assert ns["done"]["count"] == len(scored.match_tags("vc_flagged_mislabel"))


@pytest.mark.slow
def test_object_view_thresholds(detection_dataset):
    """patches_field: the detections' vc_issues re-derived from their own scores."""
    ds = detection_dataset
    vc.analyze(ds, patches_field="ground_truth", label_field="ground_truth", model="demo",
               progress=False)
    pre = "ground_truth.detections."
    fields = [s.field for s in ISSUES.values()]      # attributes, not in the schema
    a, b = [s.name for s in ISSUES.values() if s.field in fields and not s.flag][:2]
    out = vc.set_issue_thresholds(ds, {a: 0.1, b: 0.9}, patches_field="ground_truth")
    got = [x for sub in ds.values(pre + "vc_issues") for x in (sub or [])]
    cols = {f: [x for sub in ds.values(pre + f) for x in (sub or [])] for f in fields}
    th = {**{k: DEFAULT_THRESHOLD for k in ISSUES}, a: 0.1, b: 0.9}
    assert got == issue_lists(cols, th, range(len(got)))[0]
    assert out["issues"][a] == sum(a in i for i in got) > 0
    st = vc.review_state(ds, patches_field="ground_truth")
    assert st[a]["threshold"] == 0.1 and vc.review_state(ds) == {}
    patches = vc.flagged_view(ds, a, patches_field="ground_truth")
    assert len(patches) == out["issues"][a]
    done = vc.tag_flagged(ds, a, patches_field="ground_truth")
    assert done["count"] == out["issues"][a]
    assert ds.count_label_tags().get(f"vc_flagged_{a}", 0) == done["count"]
