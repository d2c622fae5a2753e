"""The App operators, executed headlessly through FiftyOne's operator API
(``fiftyone.operators.execute_operator``, and the delegated-operation service), against real
datasets in MongoDB and real LanceDB tables: what each one writes, the view it puts in the grid,
and the clear message (not a traceback) of each validation path."""
import asyncio
import base64
import collections
import io
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import yaml
from PIL import Image

import fiftyone as fo
import fiftyone.operators as foo
from fiftyone import ViewField as F
from fiftyone.operators.executor import ExecutionError

import visual_curation as vc
from visual_curation.core import store as vcs
from visual_curation.core.similarity import similar_ids

REPO = Path(__file__).resolve().parents[1]
OPERATORS = ["compute_embeddings", "run_analyses", "find_similar", "text_search",
             "select_uniques", "clean_dataset", "find_leakage", "delete_run"]
VC_FIELDS = [f"vc_cluster_{k}" for k in range(1, 6)] + [
    "vc_dup_group", "vc_duplicate", "vc_uniqueness", "vc_mislabel", "vc_suggested_label",
    "vc_outlier", "vc_blur", "vc_dark", "vc_bright", "vc_issues"]


# ------------------------------------------------------------------------------------- helpers

def _fresh(vc_helpers, folder, name):
    """A bench dataset, persistent (so that no other FiftyOne process's exit removes it while
    the test runs); the fixtures delete it."""
    return vc_helpers.load_bench_dataset_persistent(folder, name)


def _rejected(vc_helpers, name, *args, **kwargs):
    """Runs an operator that must refuse its input; returns the validation message."""
    with pytest.raises(ExecutionError) as e:
        vc_helpers.run_operator(name, *args, **kwargs)
    msg = str(e.value)
    assert msg.startswith("Validation error"), msg
    assert "Traceback" not in msg, msg
    return msg


def _grid(vc_helpers, result, dataset):
    """The view the operator put in the grid (its last ``set_view``)."""
    sets = vc_helpers.triggered(result, "set_view")
    assert sets, "the operator did not set the grid's view"
    params = sets[-1]
    if params.get("name"):
        return dataset.load_saved_view(params["name"])
    return built_view(dataset, params["view"])


def built_view(dataset, stages):
    """A view from the stages an operator sent to the App, decoded as the App server does
    (extended JSON: ``{"$oid": ...}`` back to ObjectIds)."""
    import json

    from bson import json_util

    return fo.DatasetView._build(dataset, json_util.loads(json.dumps(stages)))


def _png_b64(path):
    return base64.b64encode(Path(path).read_bytes()).decode()


def _run_generator(uri, **ctx):
    """Immediate execution without exhausting the generator: returns the messages it yielded
    (``(operator, params)`` of each) and the generator's return value."""
    from fiftyone.operators.executor import _parse_ctx, execute_or_delegate_operator

    res = asyncio.run(execute_or_delegate_operator(uri, _parse_ctx(ctx=ctx), exhaust=False))
    res.raise_exceptions()
    assert res.is_generator
    messages, gen = [], res.result
    while True:
        try:
            msg = next(gen)
        except StopIteration as stop:
            return messages, stop.value
        body = msg.body.to_json()
        messages.append((body["operator_uri"], body["params"]))


# ------------------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def analysed(fmnist_small, vc_helpers):
    """The 300-image benchmark, embedded and analysed through the operators (run now)."""
    ds, truth = _fresh(vc_helpers, fmnist_small, "vc-ops-analysed")
    emb = vc_helpers.run_operator("compute_embeddings", ds, params={
        "model": "demo", "pretrained": "", "batch_size": 64})
    ana = vc_helpers.run_operator("run_analyses", ds, params={"label_field": "ground_truth"})
    yield SimpleNamespace(ds=ds, truth=truth, emb=emb, ana=ana)
    for name in ("vc-ops-clean", "vc-ops-clone-del", "vc-ops-leak"):
        if fo.dataset_exists(name):
            fo.delete_dataset(name)
    vc_helpers.cleanup(ds)


@pytest.fixture()
def fresh(fmnist_small, vc_helpers, request):
    ds, truth = _fresh(vc_helpers, fmnist_small, f"vc-ops-{request.node.name}"[:100])
    yield ds
    vc_helpers.cleanup(ds)


# ------------------------------------------------------------------------------------- registry

def test_operators_are_registered_and_listed_in_the_manifest():
    uris = {op.uri for op in foo.list_operators()}
    for name in OPERATORS:
        assert f"@visual-curation/curation/{name}" in uris
    manifest = yaml.safe_load((REPO / "fiftyone.yml").read_text())
    assert set(OPERATORS) <= set(manifest["operators"])
    ops = {op.name: op for op in foo.list_operators() if op.uri.startswith("@visual-curation")}
    for name in ("compute_embeddings", "run_analyses"):
        conf = ops[name].config
        assert conf.execute_as_generator and conf.allow_delegated_execution
        assert conf.allow_immediate_execution


def _input_properties(uri, dataset, view=None, selected=(), params=None):
    from fiftyone.operators.executor import _parse_ctx, resolve_type
    from fiftyone.operators.registry import OperatorRegistry

    req = _parse_ctx(ctx=dict(dataset=dataset, view=view, selected=list(selected),
                              params=params or {}))
    prop = asyncio.run(resolve_type(OperatorRegistry(), uri, req))
    return prop.type.properties


def _target_choices(prop):
    return [c.value for c in prop.view.choices]


def test_fiftyone_adds_the_target_input(analysed):
    """Calling ctx.target_view() in resolve_input makes FiftyOne 1.22 add its own target input
    (dataset / current view / selected samples); find_similar declares it without the
    selection (the selection is its query)."""
    ds = analysed.ds
    view = ds.match(F("ground_truth.label") == "bag")
    sel = ds.take(3, seed=1).values("id")
    for name in ("compute_embeddings", "run_analyses", "select_uniques", "clean_dataset",
                 "find_leakage", "text_search"):
        props = _input_properties(f"@visual-curation/curation/{name}", ds, view, sel)
        assert "view_target" in props, name
        choices = _target_choices(props["view_target"])
        assert {"DATASET", "CURRENT_VIEW", "SELECTED_SAMPLES"} <= set(choices), (name, choices)
    props = _input_properties("@visual-curation/curation/find_similar", ds, view, sel,
                              {"source": "selected"})
    choices = _target_choices(props["view_target"])
    assert "CURRENT_VIEW" in choices and "SELECTED_SAMPLES" not in choices


def test_a_result_in_the_grid_is_not_the_next_target(analysed, vc_helpers):
    """After a search the grid shows its result: the next forms default to the whole dataset
    and name the current view as that result (an SDK call without a target does the same); a
    view the user made keeps FiftyOne's default, the narrowest target."""
    ds = analysed.ds
    res = vc_helpers.run_operator("text_search", ds, params={"text": "a photo of a sandal",
                                                             "k": 50})
    grid = _grid(vc_helpers, res, ds)
    for name, params in (("find_similar", {"source": "upload"}), ("text_search", {}),
                         ("select_uniques", {}), ("clean_dataset", {})):
        prop = _input_properties(f"@visual-curation/curation/{name}", ds, grid, (),
                                 params)["view_target"]
        assert prop.default == "DATASET", name
        desc = {c.value: c.description for c in prop.view.choices}["CURRENT_VIEW"]
        assert "50 results for 'a photo of a sandal' (your last search)" in desc, desc
    res = vc_helpers.run_operator("text_search", view=grid, params={"text": "a photo of a bag",
                                                                     "k": 10})
    assert "bag" in _grid(vc_helpers, res, ds).values("ground_truth.label")
    bags = ds.match(F("ground_truth.label") == "bag")
    prop = _input_properties("@visual-curation/curation/text_search", ds, bags)["view_target"]
    assert prop.default != "DATASET"
    desc = {c.value: c.description for c in prop.view.choices}["CURRENT_VIEW"]
    assert "last search" not in desc


# ------------------------------------------------------------------------------------- embeddings

def test_compute_embeddings_reports_progress_and_honours_the_selected_target(fresh):
    ds = fresh
    selected = ds.take(24, seed=4).values("id")
    messages, result = _run_generator(
        "@visual-curation/curation/compute_embeddings", dataset=ds, selected=selected,
        params={"model": "demo", "batch_size": 8, "view_target": "SELECTED_SAMPLES"})
    ops = [op for op, _ in messages]
    assert ops[0] == "set_progress" and ops.count("set_progress") >= 2
    assert "reload_dataset" in ops and ops[-1] == "notify"
    assert result["embedded"] == 24 and result["errors"] == 0
    ids, _, _ = vcs.VectorStore.for_dataset(ds, "demo", "images").vectors()
    assert sorted(ids) == sorted(selected)
    assert "vc_embeddings_demo_images" in ds.list_runs()


def test_compute_and_analyse_through_the_operators(analysed):
    ds, truth = analysed.ds, analysed.truth
    assert vcs.VectorStore.for_dataset(ds, "demo", "images").count() == len(ds)
    for f in VC_FIELDS:
        assert ds.has_sample_field(f), f
    issues = ds.get_field("vc_issues")
    assert issues.description and issues.info.get("visual_curation")
    # typed by the engine (the analyzers' FieldSpec kind, declared by core.fields), so that
    # the App's sidebar can filter it
    assert isinstance(issues.field, fo.StringField)
    assert len(ds.exists("vc_uniqueness")) == len(ds)
    # the planted defects are found
    dark = ds.match(F("bench_truth_kind") == "dark")
    flagged = dark.match(F("vc_issues").contains("dark"))
    assert len(dark) and len(flagged) >= len(dark) - 1
    dups = ds.match(F("bench_truth_kind") == "dup")
    assert len(dups) and len(dups.exists("vc_dup_group")) >= len(dups) // 2


def test_delegated_runs_then_delete_run(fresh, vc_helpers):
    """Queued with request_delegation=True, executed by the delegated-operation service, on a
    60-sample current view; then delete_run removes exactly what was written."""
    from fiftyone.operators.delegated import DelegatedOperationService
    from fiftyone.operators.executor import ExecutionRunState

    ds = fresh
    view = ds.take(60, seed=0)
    svc = DelegatedOperationService()

    queued = vc_helpers.run_operator("compute_embeddings", view=view, request_delegation=True,
                                     params={"model": "demo", "view_target": "CURRENT_VIEW"})
    assert queued.delegated
    assert not ds.list_runs()  # nothing ran yet
    done = svc.execute_queued_operations(dataset_name=ds.name)
    assert len(done) == 1
    assert vcs.VectorStore.for_dataset(ds, "demo", "images").count() == 60

    queued = vc_helpers.run_operator(
        "run_analyses", view=view, request_delegation=True,
        params={"view_target": "CURRENT_VIEW", "label_field": "",
                "analyses": ["duplicates", "uniqueness", "quality"],
                "thresholds": {"dark": 0.2, "blur": 0.9, "bright": 0.9}})
    assert queued.delegated and not ds.has_sample_field("vc_issues")
    svc.execute_queued_operations(dataset_name=ds.name)
    ops = svc.list_operations(dataset_name=ds.name)
    assert len(ops) == 2 and all(op.run_state == ExecutionRunState.COMPLETED for op in ops), \
        [(op.operator, op.run_state, op.result) for op in ops]
    assert len(ds.exists("vc_issues")) == 60
    assert set(ds.exists("vc_issues").values("id")) == set(view.values("id"))
    assert not ds.has_sample_field("vc_cluster_1")  # only the chosen analyses
    dark = [v for v, i in zip(*ds.exists("vc_dark").values(["vc_dark", "vc_issues"]))
            if v is not None and v >= 0.2]
    assert len(ds.match(F("vc_issues").contains("dark"))) == len(dark)
    for run in svc.list_operations(dataset_name=ds.name):
        svc.delete_operation(run.id)

    # delete_run: the confirmation is required, then everything Visual Curation wrote goes
    msg = _rejected(vc_helpers, "delete_run", ds, params={"confirm": False})
    assert "Tick 'I understand'" in msg
    ours = [f for f in ds.get_field_schema() if f.startswith("vc_")]
    res = vc_helpers.run_operator("delete_run", ds, params={"confirm": True})
    assert res.result["fields"] == len(ours) >= 5 and res.result["tables"] >= 1
    assert not [f for f in ds.get_field_schema() if f.startswith("vc_")]
    assert not [k for k in ds.list_runs() if k.startswith("vc_")]
    assert not vcs.VectorStore.for_dataset(ds, "demo", "images").exists()
    assert len(ds) > 0 and ds.has_sample_field("ground_truth")
    assert vc_helpers.triggered(res, "reload_dataset")
    msg = _rejected(vc_helpers, "delete_run", ds, params={"confirm": True})
    assert "Nothing to delete" in msg


# ------------------------------------------------------------------------------------- similarity

def _read_only(vc_helpers, ds, res, grid, k, before):
    """A search put ``k`` results in the grid and wrote nothing: no field, no sample changed."""
    assert len(grid) == k and res.result["count"] == k
    assert not [f for f in ds.get_field_schema() if "similarity" in f]
    assert ds.values("last_modified_at") == before
    assert not vc_helpers.triggered(res, "reload_dataset")


def test_find_similar_selected_samples(analysed, vc_helpers):
    ds = analysed.ds
    before = ds.values("last_modified_at")
    q = ds.match(F("bench_truth_kind") == "clean").first().id
    res = vc_helpers.run_operator("find_similar", ds, selected=[q],
                                  params={"source": "selected", "k": 12})
    grid = _grid(vc_helpers, res, ds)
    _read_only(vc_helpers, ds, res, grid, 12, before)
    assert grid.first().id == q and res.result["best_similarity"] > 0.9999
    assert grid.values("id") == [i for i, _ in similar_ids(ds, sample_id=[q], k=12)]
    # through the dataset's Brain similarity index: the App's own similarity sort
    assert [st["_cls"] for st in grid._serialize()][-1].endswith("SortBySimilarity")


def test_find_similar_searches_only_the_chosen_target(analysed, vc_helpers):
    ds = analysed.ds
    bags = ds.match(F("ground_truth.label") == "bag")
    q = ds.match(F("ground_truth.label") == "sneaker").first().id
    res = vc_helpers.run_operator("find_similar", view=bags, selected=[q], params={
        "source": "selected", "k": 5, "view_target": "CURRENT_VIEW"})
    grid = _grid(vc_helpers, res, ds)
    assert set(grid.values("ground_truth.label")) == {"bag"}
    assert grid.values("id") == [i for i, _ in similar_ids(bags, sample_id=[q], k=5)]


def test_find_similar_region_upload_and_cluster(analysed, vc_helpers):
    ds = analysed.ds
    before = ds.values("last_modified_at")
    s = ds.match(F("bench_truth_kind") == "clean").first()

    res = vc_helpers.run_operator("find_similar", ds, current_sample=s.id, params={
        "source": "region", "sample_id": s.id, "box": [0.0, 0.0, 1.0, 1.0], "k": 8})
    grid = _grid(vc_helpers, res, ds)
    _read_only(vc_helpers, ds, res, grid, 8, before)
    assert res.result["best_similarity"] > 0.999  # the whole image is the sample itself
    assert grid.values("id") == [i for i, _ in similar_ids(ds, sample_id=s.id, k=8,
                                                             box=[0.0, 0.0, 1.0, 1.0])]
    assert res.result["match"]["good"]

    data = Path(s.filepath).read_bytes()
    upload = {"name": "query.png", "type": "image/png", "size": len(data),
              "content": base64.b64encode(data).decode()}
    res = vc_helpers.run_operator("find_similar", ds, params={
        "source": "upload", "file": upload, "k": 6})
    grid = _grid(vc_helpers, res, ds)
    _read_only(vc_helpers, ds, res, grid, 6, before)
    assert res.result["best_similarity"] > 0.999 and s.id in grid.values("id")[:3]
    assert res.result["match"]["good"]
    # an image like nothing in the dataset: said so, the grid filled anyway
    checker = (np.indices((64, 64)).sum(axis=0) // 8 % 2 * 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(checker).convert("RGB").save(buf, format="PNG")
    upload = {"name": "checkerboard.png", "type": "image/png", "size": len(buf.getvalue()),
              "content": base64.b64encode(buf.getvalue()).decode()}
    res = vc_helpers.run_operator("find_similar", ds, params={
        "source": "upload", "file": upload, "k": 6})
    assert len(_grid(vc_helpers, res, ds)) == 6 and not res.result["match"]["good"]
    note = vc_helpers.triggered(res, "notify")[-1]
    assert note["variant"] == "warning" and note["message"].startswith("No close match")

    cid = s.vc_cluster_2
    res = vc_helpers.run_operator("find_similar", ds, params={
        "source": "cluster", "level": 2, "cluster": cid, "k": 10})
    grid = _grid(vc_helpers, res, ds)
    _read_only(vc_helpers, ds, res, grid, 10, before)
    members = set(ds.match(F("vc_cluster_2") == cid).values("id"))
    assert members & set(grid.values("id"))


def test_find_similar_validation(analysed, fresh, vc_helpers):
    ds = analysed.ds
    msg = _rejected(vc_helpers, "find_similar", ds, params={"source": "selected", "k": 5})
    assert "Select one or more samples" in msg
    msg = _rejected(vc_helpers, "find_similar", ds, params={
        "source": "upload", "k": 5,
        "file": {"name": "x.txt", "content": base64.b64encode(b"not an image").decode()}})
    assert "not a PNG, JPEG" in msg
    msg = _rejected(vc_helpers, "find_similar", ds, params={
        "source": "upload", "k": 5, "file": {"name": "big.png", "size": 25 * 1024 * 1024,
                                             "content": _png_b64(ds.first().filepath)}})
    assert "larger than 20 MB" in msg
    msg = _rejected(vc_helpers, "find_similar", ds, params={
        "source": "region", "sample_id": ds.first().id, "box": [0.5, 0.5, 0.8, 0.2], "k": 5})
    assert "The box must be" in msg
    msg = _rejected(vc_helpers, "find_similar", ds, params={
        "source": "region", "sample_id": "0" * 24, "box": [0, 0, 1, 1], "k": 5})
    assert "No sample with id" in msg
    msg = _rejected(vc_helpers, "find_similar", ds, params={
        "source": "cluster", "level": 1, "cluster": 987654, "k": 5})
    assert "No samples in cluster 987654" in msg
    msg = _rejected(vc_helpers, "find_similar", ds, selected=[ds.first().id],
                    params={"source": "selected", "k": 0})
    assert "Number of results" in msg
    # no embeddings yet on a fresh dataset
    msg = _rejected(vc_helpers, "find_similar", fresh, selected=[fresh.first().id],
                    params={"source": "selected", "k": 5})
    assert "No embeddings on this dataset yet" in msg and "compute embeddings" in msg


def test_find_similar_selected_objects(detection_dataset, vc_helpers):
    ds = detection_dataset
    vc_helpers.run_operator("compute_embeddings", ds, params={
        "model": "demo", "kind": "objects", "patches_field": "ground_truth"})
    table = vcs.VectorStore.for_dataset(ds, "demo", "patches_ground_truth")
    embedded, _, _ = table.vectors()
    skipped = ds.count("ground_truth.detections.vc_error")  # boxes too small, with the reason
    assert len(embedded) + skipped == ds.count("ground_truth.detections") and len(embedded)
    patches = ds.to_patches("ground_truth")
    p = patches.select_labels(ids=embedded[:1]).first()
    sel = [{"label_id": p.ground_truth.id, "sample_id": p.sample_id, "field": "ground_truth"}]
    res = vc_helpers.run_operator("find_similar", view=patches, selected_labels=sel,
                                  params={"source": "selected_labels", "k": 5})
    grid = _grid(vc_helpers, res, ds)
    assert grid._is_patches and len(grid) == 5
    assert grid.first().ground_truth.id == p.ground_truth.id
    assert res.result["best_similarity"] > 0.9999
    assert grid.values("ground_truth.id") == [i for i, _ in similar_ids(
        ds, sample_id=[p.ground_truth.id], k=5, patches_field="ground_truth")]
    assert not ds.has_field("ground_truth.detections.vc_similarity")
    # patches ticked in the grid of a patches view are objects too (a patch id is a label id)
    res = vc_helpers.run_operator("find_similar", view=patches, selected=[p.id],
                                  params={"source": "selected_labels", "k": 3})
    assert _grid(vc_helpers, res, ds).first().ground_truth.id == p.ground_truth.id
    msg = _rejected(vc_helpers, "find_similar", view=patches,
                    params={"source": "selected_labels", "k": 3})
    assert "Select objects first" in msg

    # without image embeddings: a clear message; a Detections field is no label field
    msg = _rejected(vc_helpers, "run_analyses", ds, params={"label_field": "ground_truth"})
    assert "No embeddings on this dataset yet" in msg
    vc_helpers.run_operator("compute_embeddings", ds, params={"model": "demo"})
    msg = _rejected(vc_helpers, "run_analyses", ds, params={"label_field": "ground_truth"})
    assert "'ground_truth' holds Detections, not Classification" in msg
    assert "Object view" in msg


def test_text_search_sorts_the_grid(analysed, vc_helpers):
    ds = analysed.ds
    before = ds.values("last_modified_at")
    res = vc_helpers.run_operator("text_search", ds, params={
        "text": "a photo of a sneaker", "k": 20})
    grid = _grid(vc_helpers, res, ds)
    _read_only(vc_helpers, ds, res, grid, 20, before)
    assert res.result["match"]["good"]
    assert vc_helpers.triggered(res, "notify")[-1]["message"].startswith("Good match")
    labels = collections.Counter(grid.values("ground_truth.label"))
    assert labels.most_common(1)[0][0] == "sneaker", labels
    assert grid.values("id") == [i for i, _ in similar_ids(ds, text="a photo of a sneaker",
                                                             k=20)]
    # searching the current view only
    bags = ds.match(F("ground_truth.label") == "bag")
    res = vc_helpers.run_operator("text_search", view=bags, params={
        "text": "a photo of a sneaker", "k": 5, "view_target": "CURRENT_VIEW"})
    assert set(_grid(vc_helpers, res, ds).values("ground_truth.label")) == {"bag"}
    msg = _rejected(vc_helpers, "text_search", ds, params={"text": "   ", "k": 5})
    assert "Type a prompt" in msg
    # prompts about what the dataset does not show: said so (the grid is filled anyway);
    # every class of the dataset, named, is a good match
    for prompt in ("a photo of a dog", "a mountain landscape", "a skyscraper at night"):
        res = vc_helpers.run_operator("text_search", ds, params={"text": prompt, "k": 10})
        assert len(_grid(vc_helpers, res, ds)) == 10
        assert not res.result["match"]["good"], (prompt, res.result["match"])
        note = vc_helpers.triggered(res, "notify")[-1]
        assert note["variant"] == "warning" and note["message"].startswith("No good match")
    for c in sorted(set(ds.values("ground_truth.label"))):
        res = vc_helpers.run_operator("text_search", ds, params={"text": f"a photo of a {c}",
                                                                 "k": 10})
        assert res.result["match"]["good"], (c, res.result["match"])


# ------------------------------------------------------------------------------------- curation

def test_select_uniques(analysed, vc_helpers):
    ds = analysed.ds
    ids, u = ds.values(["id", "vc_uniqueness"])
    ranked = [i for _, i in sorted(zip(u, ids), key=lambda t: -t[0])]

    res = vc_helpers.run_operator("select_uniques", ds, params={"mode": "top", "count": 25})
    grid = _grid(vc_helpers, res, ds)
    assert len(grid) == 25
    assert set(grid.values("id")) == set(ranked[:25])
    gu = grid.values("vc_uniqueness")
    assert gu == sorted(gu, reverse=True)

    t = float(np.median(u))
    res = vc_helpers.run_operator("select_uniques", ds, params={
        "mode": "threshold", "threshold": t, "save": True, "view_name": "vc-unique"})
    assert ds.has_saved_view("vc-unique")
    grid = _grid(vc_helpers, res, ds)
    assert vc_helpers.triggered(res, "set_view")[-1] == {"name": "vc-unique"}
    assert len(grid) == sum(1 for x in u if x >= t) and min(grid.values("vc_uniqueness")) >= t
    msg = _rejected(vc_helpers, "select_uniques", ds, params={
        "mode": "threshold", "threshold": t, "save": True, "view_name": "vc-unique"})
    assert "already exists" in msg
    ds.delete_saved_view("vc-unique")
    msg = _rejected(vc_helpers, "select_uniques", ds, params={"mode": "threshold",
                                                                "threshold": 1.5})
    assert "threshold must be a number from 0 to 1" in msg


def _expected_kept(view, issues):
    ids, dup, iss = view.values(["id", "vc_duplicate", "vc_issues"])
    return {i for i, d, s in zip(ids, dup, iss)
            if not d and not (set(s or []) & set(issues))}


def test_clean_dataset_to_a_saved_view_or_a_new_dataset(analysed, vc_helpers):
    ds = analysed.ds
    n = len(ds)
    issues = ["dark", "blur", "bright"]
    keep = _expected_kept(ds, issues)
    assert 0 < len(keep) < n

    dups = sum(bool(d) for d in ds.values("vc_duplicate"))
    per_issue = {i: sum(i in (s or []) for s in ds.values("vc_issues")) for i in issues}
    # the form says beforehand what is kept and dropped, per reason
    props = _input_properties("@visual-curation/curation/clean_dataset", ds, params={
        "drop_duplicates": True, "issues": issues, "output": "saved_view", "name": "vc-clean"})
    preview = props["vc_preview"].view.label
    assert f"Keeps {len(keep):,} of {n:,} samples; drops {n - len(keep):,}" in preview
    assert f"duplicate {dups:,}" in preview and f"blur {per_issue['blur']:,}" in preview

    res = vc_helpers.run_operator("clean_dataset", ds, params={
        "drop_duplicates": True, "issues": issues, "output": "saved_view", "name": "vc-clean"})
    summary = res.result.pop("summary")
    assert res.result == {"total": n, "kept": len(keep), "dropped": n - len(keep),
                          "reasons": {"duplicate": dups, **per_issue}, "saved_view": "vc-clean"}
    assert summary.startswith("Saved view 'vc-clean': Keeps")
    assert set(ds.load_saved_view("vc-clean").values("id")) == keep
    # the grid shows the saved view's samples, set by its stages (never a name the App's list
    # of saved views may not hold yet)
    assert not vc_helpers.triggered(res, "set_view")[-1].get("name")
    assert set(_grid(vc_helpers, res, ds).values("id")) == keep
    assert any(f"Keeps {len(keep):,} of {n:,}" in (p.get("message") or "")
               for p in vc_helpers.triggered(res, "notify"))
    assert len(ds) == n  # originals untouched
    ds.delete_saved_view("vc-clean")

    res = vc_helpers.run_operator("clean_dataset", ds, params={
        "drop_duplicates": True, "issues": issues, "output": "new_dataset",
        "name": "vc-ops-clean"})
    new = fo.load_dataset("vc-ops-clean")
    assert len(new) == len(keep) and set(new.values("filepath")) == set(
        ds.select(list(keep)).values("filepath"))
    assert len(ds) == n
    assert vc_helpers.triggered(res, "open_dataset")
    # the new dataset carries the analysis: its own vectors of its samples, the run records,
    # the Brain index; search and the panel work on it at once
    assert res.result["carried"]["runs"] >= 2
    assert set(new.list_runs()) == {k for k in ds.list_runs() if "map" not in k}
    hits = vc.find_similar(new, text="a photo of a sneaker", k=10)
    assert len(hits) == 10 and set(hits.values("id")) <= keep
    assert len(new.sort_by_similarity(new.first().id, k=5, brain_key=vc.brain_key_for("demo")))
    from visual_curation.panels import stored

    assert stored.status(new, None)[0] == "ready"

    msg = _rejected(vc_helpers, "clean_dataset", ds, params={
        "drop_duplicates": True, "issues": [], "output": "new_dataset", "name": "vc-ops-clean"})
    assert "already exists" in msg
    msg = _rejected(vc_helpers, "clean_dataset", ds, params={
        "drop_duplicates": False, "issues": [], "output": "saved_view", "name": "x"})
    assert "Nothing to drop" in msg


def test_clean_dataset_deletes_only_when_ticked(analysed, vc_helpers):
    clone = analysed.ds.clone("vc-ops-clone-del", persistent=True)
    try:
        n = len(clone)
        keep = _expected_kept(clone, [])
        vc_helpers.run_operator("clean_dataset", clone, params={
            "drop_duplicates": True, "issues": [], "output": "saved_view", "name": "kept",
            "delete_originals": False})
        assert len(clone) == n
        res = vc_helpers.run_operator("clean_dataset", clone, params={
            "drop_duplicates": True, "issues": [], "output": "saved_view", "name": "kept2",
            "delete_originals": True})
        assert res.result["deleted"] == n - len(keep) > 0
        assert set(clone.values("id")) == keep
    finally:
        clone.delete()


def test_find_leakage_by_field_and_by_tags(analysed, vc_helpers):
    ds = analysed.ds.clone("vc-ops-leak", persistent=True)
    try:
        ids, groups = ds.values(["id", "vc_dup_group"])
        members = collections.defaultdict(list)
        for i, g in zip(ids, groups):
            if g is not None:
                members[g].append(i)
        multi = [g for g, m in members.items() if len(m) > 1]
        assert multi, "the benchmark has near-duplicates"
        # every group's first member in train, the rest in test, except one group kept in train
        split = {i: "train" for i in ids}
        safe = multi[0]
        for g in multi[1:]:
            for i in members[g][1:]:
                split[i] = "test"
        ds.set_values("split", [split[i] for i in ids])
        expected = {i for g in multi[1:] for i in members[g]}

        res = vc_helpers.run_operator("find_leakage", ds, params={
            "split_by": "field", "split_field": "split"})
        grid = _grid(vc_helpers, res, ds)
        assert set(grid.values("id")) == expected
        assert res.result == {"groups": len(multi) - 1, "samples": len(expected)}
        assert not set(members[safe]) & set(grid.values("id"))

        ds.select([i for i in ids if split[i] == "train"]).tag_samples("train")
        ds.select([i for i in ids if split[i] == "test"]).tag_samples("test")
        res = vc_helpers.run_operator("find_leakage", ds, params={
            "split_by": "tags", "split_tags": ["train", "test"]})
        assert set(_grid(vc_helpers, res, ds).values("id")) == expected

        msg = _rejected(vc_helpers, "find_leakage", ds, params={
            "split_by": "field", "split_field": "nope"})
        assert "no field 'nope'" in msg
        msg = _rejected(vc_helpers, "find_leakage", ds, params={
            "split_by": "tags", "split_tags": ["train"]})
        assert "at least two split tags" in msg
        # an analysis that found no duplicates: the field exists, empty, and the form says so
        ds.set_values("vc_dup_group", [None] * len(ds))
        msg = _rejected(vc_helpers, "find_leakage", ds, params={
            "split_by": "field", "split_field": "split"})
        assert "found no near-duplicates" in msg
    finally:
        ds.delete()


# ------------------------------------------------------------------------------------- validation

def test_validation_messages_instead_of_tracebacks(analysed, fresh, vc_helpers):
    ds = analysed.ds
    # an empty target
    for name, params in (("compute_embeddings", {"model": "demo"}), ("run_analyses", {}),
                         ("select_uniques", {}), ("clean_dataset", {}), ("find_leakage", {}),
                         ("text_search", {"text": "a bag"}),
                         ("find_similar", {"source": "upload"})):
        msg = _rejected(vc_helpers, name, view=ds.limit(0), params=dict(
            params, view_target="CURRENT_VIEW"))
        assert "The target is empty" in msg, (name, msg)
    # no embeddings / no analyses yet
    for name, params, expected in (
            ("run_analyses", {}, "No embeddings on this dataset yet"),
            ("text_search", {"text": "a bag"}, "No CLIP embeddings on this dataset yet"),
            ("select_uniques", {}, "No 'vc_uniqueness' field yet"),
            ("clean_dataset", {}, "No 'vc_issues' field yet"),
            ("find_leakage", {}, "No 'vc_dup_group' field yet")):
        msg = _rejected(vc_helpers, name, fresh, params=params)
        assert expected in msg and "Visual Curation:" in msg, (name, msg)
    # wrong or unknown label field
    msg = _rejected(vc_helpers, "run_analyses", ds, params={"label_field": "bench_truth_kind"})
    assert "'bench_truth_kind' holds StringField, not Classification" in msg
    msg = _rejected(vc_helpers, "run_analyses", ds, params={"label_field": "nope"})
    assert "The dataset has no field 'nope'" in msg
    msg = _rejected(vc_helpers, "run_analyses", ds, params={
        "label_field": "ground_truth", "analyses": ["clusters", "sharpness"]})
    assert "Unknown analyses ['sharpness']" in msg
    msg = _rejected(vc_helpers, "run_analyses", ds, params={
        "label_field": "", "analyses": ["mislabels"]})
    assert "need a label field" in msg
    msg = _rejected(vc_helpers, "run_analyses", ds, params={
        "label_field": "ground_truth", "thresholds": {"dark": 1.7}})
    assert "less than 1" in msg
    # bad embedding inputs
    msg = _rejected(vc_helpers, "compute_embeddings", fresh, params={
        "model": "demo", "pretrained": "/no/such/checkpoint.pt"})
    assert "No checkpoint file at '/no/such/checkpoint.pt'" in msg
    msg = _rejected(vc_helpers, "compute_embeddings", fresh, params={
        "model": "demo", "batch_size": 0})
    assert "Batch size must be" in msg
    msg = _rejected(vc_helpers, "compute_embeddings", fresh, params={
        "model": "demo", "kind": "objects"})
    assert "Object view needs a Detections field" in msg
    # a user's own field with a name Visual Curation writes
    fresh.add_sample_field("vc_error", fo.StringField)
    msg = _rejected(vc_helpers, "compute_embeddings", fresh, params={"model": "demo"})
    assert "already has a field 'vc_error' that Visual Curation did not create" in msg
