"""The embedding map: our vectors mapped to 2-D (UMAP, PCA, fit on a sample + transform) and
stored as a FiftyOne Brain visualization run the App's Embeddings panel opens; images and
objects; the operator opens the panel on it coloured by cluster; ``delete_run`` removes it
(real MongoDB, LanceDB, Fashion-MNIST images, the offline demo CLIP model)."""
from pathlib import Path

import fiftyone.brain as fob
import numpy as np
import pytest

import visual_curation as vc
from conftest import run_operator, triggered
from visual_curation.core.embedding_map import map_runs

pytestmark = [pytest.mark.slow]


def _knn_agreement(points, labels, k=10):
    """How often a point's k nearest 2-D neighbours share its class."""
    d = ((points[:, None, :] - points[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    nn = np.argsort(d, axis=1)[:, :k]
    labels = np.asarray(labels)
    return float((labels[nn] == labels[:, None]).mean())


def test_map_images_umap_pca_sample_fit_and_delete(fmnist_dataset):
    ds, truth = fmnist_dataset
    vc.compute_embeddings(ds, model="demo")
    m = vc.compute_embedding_map(ds, method="umap")
    assert (m.brain_key, m.method, m.points, m.fitted_on, m.missing) == (
        "vc_map", "umap", len(ds), len(ds), 0)
    assert "vc_map" in ds.list_brain_runs(type=fob.Visualization)
    res = ds.load_brain_results("vc_map")
    assert res.points.shape == (len(ds), 2) and np.isfinite(res.points).all()
    assert set(res.sample_ids) == set(ds.values("id"))
    # the map keeps classes together: a point's 2-D neighbours mostly share its true class
    names = dict(zip(ds.values("id"), [Path(p).name for p in ds.values("filepath")]))
    labels = [str(truth[names[i]].get("true")) for i in res.sample_ids]
    umap_agree = _knn_agreement(res.points, labels)
    chance = sum((np.unique(labels, return_counts=True)[1] / len(labels)) ** 2)
    assert umap_agree > 0.6 > 2 * chance, (umap_agree, chance)

    # PCA under another key; the UMAP map stays
    p = vc.compute_embedding_map(ds, method="pca", brain_key="vc_map_pca")
    assert p.method == "pca" and p.points == len(ds)
    assert set(ds.list_brain_runs(type=fob.Visualization)) == {"vc_map", "vc_map_pca"}
    pca_pts = ds.load_brain_results("vc_map_pca").points
    assert _knn_agreement(pca_pts, [labels[list(res.sample_ids).index(i)] for i in
                                    ds.load_brain_results("vc_map_pca").sample_ids]) > chance

    # fit on a sample, transform the rest; same key → replaced, one record
    s = vc.compute_embedding_map(ds, method="umap", fit_sample=120, seed=3)
    assert (s.points, s.fitted_on) == (len(ds), 120)
    pts = ds.load_brain_results("vc_map").points
    assert pts.shape == (len(ds), 2) and np.isfinite(pts).all()
    assert sorted(c["brain_key"] for c in map_runs(ds)) == ["vc_map", "vc_map_pca"]

    # a view: only its samples; a sample without an embedding is left out and counted
    sub = ds.take(80, seed=1)
    v = vc.compute_embedding_map(sub, method="pca", brain_key="vc_map_sub")
    assert v.points == 80 and set(ds.load_brain_results("vc_map_sub").sample_ids) == set(
        sub.values("id"))

    # a brain run of the user's under that key is never replaced silently
    fob.compute_visualization(ds, points=np.zeros((len(ds), 2)), brain_key="mine")
    with pytest.raises(ValueError, match="did not make"):
        vc.compute_embedding_map(ds, brain_key="mine")
    with pytest.raises(ValueError, match="method"):
        vc.compute_embedding_map(ds, method="tsne")

    vc.delete_run(ds)
    assert ds.list_brain_runs(type=fob.Visualization) == ["mine"]
    assert not map_runs(ds)


def test_map_without_embeddings_says_what_to_run(fmnist_dataset):
    ds, _ = fmnist_dataset
    with pytest.raises(ValueError, match="compute_embeddings"):
        vc.compute_embedding_map(ds)


def test_map_objects(detection_dataset):
    ds = detection_dataset
    vc.compute_embeddings(ds, model="demo", patches_field="ground_truth")
    m = vc.compute_embedding_map(ds, patches_field="ground_truth")
    n = ds.count("ground_truth.detections")
    assert m.brain_key == "vc_map_ground_truth" and m.points + m.missing == n and m.points > 0
    res = ds.load_brain_results(m.brain_key)
    assert res.config.patches_field == "ground_truth"
    assert res.points.shape == (m.points, 2)
    assert set(res.label_ids) <= set(ds.values("ground_truth.detections.id", unwind=True))
    # the object (patches) view of the App: the same map from a patches view
    patches = ds.to_patches("ground_truth")
    p = vc.compute_embedding_map(patches, method="pca", brain_key="vc_map_patches")
    assert p.points == m.points and p.kind == "patches_ground_truth"


def test_operator_opens_the_embeddings_panel_coloured_by_cluster(fmnist_dataset):
    ds, _ = fmnist_dataset
    vc.analyze(ds, model="demo", analyses=["clusters"], progress=False)
    result = run_operator("embedding_map", ds, params={"method": "pca", "level": 3})
    assert result.error is None, result.error
    assert len(ds.load_brain_results("vc_map").points) == len(ds)
    opened = triggered(result, "open_panel")
    assert opened and opened[-1]["name"] == "Embeddings"
    # then the panel is pointed at the map, coloured by the chosen level's clusters
    show = triggered(result, "@visual-curation/curation/show_embedding_map")
    assert show == [{"openKey": "vc_map", "colorField": "vc_cluster_3"}]
    assert "vc_map" in ds.list_brain_runs(type=fob.Visualization)
