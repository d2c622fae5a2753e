"""The label-fixing operators, executed headlessly exactly as the App does (real MongoDB, real
LanceDB, the demo model): accept suggested labels / undo relabel, and propagate labels → review
→ accept → correct a rejected one → propagate again."""
import numpy as np
import pytest
from fiftyone import ViewField as F
from fiftyone.operators.executor import ExecutionError

SET_VIEW = "set_view"


def _rejected(vc_helpers, name, *args, **kwargs):
    with pytest.raises(ExecutionError) as e:
        vc_helpers.run_operator(name, *args, **kwargs)
    msg = str(e.value)
    assert msg.startswith("Validation error") and "Traceback" not in msg, msg
    return msg


@pytest.fixture()
def ds(fmnist_small, vc_helpers, request):
    ds, _ = vc_helpers.load_bench_dataset_persistent(fmnist_small,
                                                     f"vc-lops-{request.node.name}"[:100])
    yield ds
    vc_helpers.cleanup(ds)


def test_accept_in_the_current_view_then_undo(ds, vc_helpers):
    import visual_curation as vc

    msg = _rejected(vc_helpers, "accept_suggestions", ds, params={"scope": "view"})
    assert "mislabels" in msg                   # nothing analysed yet: says what to run
    vc.compute_embeddings(ds, model="demo")
    vc.analyze(ds, label_field="ground_truth", analyses=["mislabels"])
    before = dict(zip(*ds.values(["id", "ground_truth.label"])))
    flagged = set(ds.match((F("vc_mislabel") >= 0.8) &
                           (F("vc_suggested_label") != F("ground_truth.label"))).values("id"))
    assert flagged
    res = vc_helpers.run_operator("accept_suggestions", ds, view=ds.view(), params={
        "scope": "view", "min_confidence": 0.8, "label_field": "ground_truth"})
    assert res.result["changed"] == len(flagged)
    after = dict(zip(*ds.values(["id", "ground_truth.label"])))
    changed = {i for i in before if before[i] != after[i]}
    assert changed == flagged

    # undo only one selected sample, then the rest of the view
    one = sorted(changed)[0]
    res = vc_helpers.run_operator("undo_relabel", ds, view=ds.view(), selected=[one],
                                  params={"label_field": "ground_truth"})
    assert res.result["restored"] == 1
    assert ds[one].ground_truth.label == before[one]
    res = vc_helpers.run_operator("undo_relabel", ds, view=ds.view(),
                                  params={"scope": "view", "label_field": "ground_truth"})
    assert res.result["restored"] == len(changed) - 1
    assert dict(zip(*ds.values(["id", "ground_truth.label"]))) == before


def test_accept_for_one_cluster_card(ds, vc_helpers):
    """The panel's "Fix labels" button opens the form with the card's cluster."""
    import visual_curation as vc

    vc.compute_embeddings(ds, model="demo")
    vc.analyze(ds, label_field="ground_truth", analyses=["clusters", "mislabels"])
    flagged = ds.match((F("vc_mislabel") >= 0.5) &
                       (F("vc_suggested_label") != F("ground_truth.label")))
    cid = flagged.first().vc_cluster_2
    want = set(flagged.match(F("vc_cluster_2") == cid).values("id"))
    res = vc_helpers.run_operator("accept_suggestions", ds, view=ds.view(), params={
        "scope": "view", "label_field": "ground_truth", "cluster": cid, "level": 2})
    assert res.result["changed"] == len(want)
    assert set(vc.relabeled(ds, "ground_truth").values("id")) == want


def test_propagate_review_accept_correct(ds, vc_helpers):
    import visual_curation as vc

    truth = dict(zip(*ds.values(["id", "ground_truth.label"])))
    rng = np.random.default_rng(3)
    keep = set()
    for c in sorted(set(truth.values())):
        mine = sorted(i for i, lab in truth.items() if lab == c)
        keep.update(rng.choice(mine, min(4, len(mine)), replace=False).tolist())
    ds.select([i for i in truth if i not in keep]).set_field("ground_truth", None).save()

    msg = _rejected(vc_helpers, "propagate_labels", ds, params={"label_field": "ground_truth"})
    assert "compute embeddings" in msg
    vc.compute_embeddings(ds, model="demo")
    msg = _rejected(vc_helpers, "propagate_labels", ds, params={
        "label_field": "ground_truth", "output_field": "my_labels"})
    assert "vc_" in msg

    res = vc_helpers.run_operator("propagate_labels", ds, params={"label_field": "ground_truth"})
    assert res.result["labelled"] == len(ds) - len(keep)
    assert vc_helpers.triggered(res, SET_VIEW)               # the grid shows the first batch
    assert ds.count("vc_propagated") == len(ds) - len(keep)
    assert ds.count("ground_truth") == len(keep)             # the user's field untouched

    res = vc_helpers.run_operator("review_propagated", ds, params={
        "label_field": "ground_truth", "size": 10})
    assert res.result["items"] == 10
    batch = vc.review_batch(ds, "ground_truth", size=10)
    wrong = [s.id for s in batch if s.vc_propagated.label != truth[s.id]]
    for i in wrong:                                          # reject: give the true label
        res = vc_helpers.run_operator("set_label", ds, selected=[i], params={
            "label_field": "ground_truth", "label": truth[i]})
        assert res.result["labelled"] == 1
    res = vc_helpers.run_operator("accept_propagated", ds, view=batch,
                                  params={"label_field": "ground_truth"})
    assert res.result["filled"] == 10 - len(wrong)
    assert all(ds[i].ground_truth.label == truth[i] for i in batch.values("id"))
    assert ds.count("ground_truth") == len(keep) + 10
    res = vc_helpers.run_operator("propagate_labels", ds, params={"label_field": "ground_truth"})
    assert res.result["examples"] == len(keep) + 10


def test_set_label_needs_a_selection(ds, vc_helpers):
    msg = _rejected(vc_helpers, "set_label", ds, params={"label_field": "ground_truth",
                                                         "label": "bag"})
    assert "Select" in msg
