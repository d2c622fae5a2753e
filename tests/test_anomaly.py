"""The label-free anomaly analysis on planted-truth sets with the offline demo model: foreign
images found without labels, a run through ``vc.analyze`` and an incremental run that agrees
with a full one."""
import numpy as np
import pytest

from conftest import load_bench_dataset, make_bench

from bench.metrics import auroc
from visual_curation.core.analyzers import anomaly


def _embed(paths):
    from visual_curation.core import images as vci
    from visual_curation.core.models import load_model

    lm = load_model("demo", None, "cpu")
    out = [lm.embed_tensors(lm.collate([lm.prepare(vci.load_image(p)[0])
                                        for p in paths[i:i + 128]]))
           for i in range(0, len(paths), 128)]
    return np.concatenate(out)


@pytest.fixture(scope="module")
def stamps_vectors(tmp_root):
    """Stamps with 3 % foreign Fashion-MNIST images (which resemble each other), demo vectors."""
    import json

    folder = make_bench(tmp_root / "st-anomaly", "stamps", n=300, seed=3, outliers=0.03)
    truth = json.loads((folder / "truth.json").read_text())
    names = sorted(truth)
    return folder, names, truth, _embed([str(folder / "data" / n) for n in names])


def _run(ids, vectors):
    from visual_curation.core.analyzers import REGISTRY
    from visual_curation.core.analyzers.base import AnalysisInput

    inp = AnalysisInput(ids=ids, vectors=vectors)
    return REGISTRY["anomaly"].run(inp)


def test_foreign_images_found_without_labels(stamps_vectors):
    _, names, truth, X = stamps_vectors
    ids = [f"{i:024x}" for i in range(len(names))]
    conf = np.array(_run(ids, X).fields["vc_anomaly"])
    pos = np.array([bool(truth[n]["outlier"]) for n in names])
    assert pos.sum() >= 5 and ((conf >= 0) & (conf <= 1)).all()
    assert auroc(conf, pos) >= 0.97
    assert (conf[pos] >= 0.5).mean() >= 0.8          # flagged at the default threshold
    assert (conf[~pos] >= 0.5).mean() <= 0.05        # only a small tail of the rest


def test_incremental_update_agrees_with_a_full_run(stamps_vectors):
    from visual_curation.core import incremental
    from visual_curation.core.analyzers import REGISTRY
    from visual_curation.core.analyzers.base import AnalysisInput

    _, names, _, X = stamps_vectors
    ids = [f"{i:024x}" for i in range(len(names))]
    full = np.array(_run(ids, X).fields["vc_anomaly"]) >= 0.5
    rng = np.random.default_rng(0)
    for share in (0.02, 0.1):
        new = np.sort(rng.choice(len(ids), size=int(share * len(ids)), replace=False))
        old = np.ones(len(ids), bool)
        old[new] = False
        rows = np.flatnonzero(old)
        before = _run([ids[r] for r in rows], X[rows])
        # the run keeps its fitted geometry: the update places new items on it, no refit
        geometry = anomaly.decode_geometry(before.summary["state"]["geometry"])
        assert geometry[2].shape == (X.shape[1], before.summary["dims"])
        vals, _, _ = incremental.update(
            AnalysisInput(ids=ids, vectors=X), new, old, ["anomaly"],
            {"anomaly": REGISTRY["anomaly"].params()}, {"anomaly": before.summary}, None, None)
        got = np.zeros(len(ids))
        got[rows] = before.fields["vc_anomaly"]
        for r, v in vals["vc_anomaly"].items():
            got[r] = v
        assert np.mean((got >= 0.5) == full) >= 0.99


def test_analyze_writes_the_field_and_issue(stamps_vectors, request):
    import fiftyone as fo

    import visual_curation as vc

    folder, _, _, _ = stamps_vectors
    ds, truth = load_bench_dataset(folder, f"vc-test-{request.node.name}"[:100])
    try:
        vc.compute_embeddings(ds, model="demo")
        s = vc.analyze(ds, analyses=["anomaly"], model="demo")
        assert s["issues"]["anomaly"] >= 5, s
        kinds = ds.match(fo.ViewField("vc_issues").contains("anomaly")).values(
            "bench_truth_kind")
        every = ds.values("bench_truth_kind")
        assert kinds.count("outlier") >= 0.8 * every.count("outlier")
        assert len(kinds) - kinds.count("outlier") <= 0.05 * len(every)
        assert all(0.0 <= v <= 1.0 for v in ds.values("vc_anomaly"))
    finally:
        vc.delete_run(ds)
        ds.delete()


def test_object_view_writes_an_attribute_per_box(detection_dataset):
    import visual_curation as vc

    ds = detection_dataset
    vc.compute_embeddings(ds, model="demo", patches_field="ground_truth")
    vc.analyze(ds, patches_field="ground_truth", analyses=["anomaly"], model="demo")
    vals = [v for vs in ds.values("ground_truth.detections.vc_anomaly") for v in vs or []]
    errs = [e for es in ds.values("ground_truth.detections.vc_error") for e in es or []]
    scored = [v for v in vals if v is not None]
    assert scored and all(0.0 <= v <= 1.0 for v in scored)
    # a box without a score is one that could not be embedded (too small), with the reason
    assert all(e for v, e in zip(vals, errs) if v is None)


def test_analyze_extends_an_earlier_run_incrementally(stamps_vectors, request):
    import fiftyone as fo

    import visual_curation as vc

    folder, _, _, _ = stamps_vectors
    ds, _ = load_bench_dataset(folder, f"vc-test-{request.node.name}"[:100])
    try:
        later = ds.take(8, seed=0)
        paths = later.values("filepath")
        ds.delete_samples(later)
        vc.compute_embeddings(ds, model="demo")
        vc.analyze(ds, analyses=["anomaly", "uniqueness"], model="demo")
        ds.add_samples([fo.Sample(filepath=p) for p in paths])
        vc.compute_embeddings(ds, model="demo")
        s = vc.analyze(ds, analyses=["anomaly", "uniqueness"], model="demo")
        assert s.get("incremental", {}).get("added") == 8, s
        new = ds.select_by("filepath", paths).values("vc_anomaly")
        assert all(v is not None and 0.0 <= v <= 1.0 for v in new)
    finally:
        vc.delete_run(ds)
        ds.delete()
