"""The Brain similarity backend over our LanceDB tables: FiftyOne's own similarity tools
(sort_by_similarity by id, vector and prompt, least similar, near duplicates, leaky splits,
object patches) work on Visual Curation's vectors, and the index follows the table (real
MongoDB, LanceDB, Fashion-MNIST images with planted truth, the offline demo CLIP model)."""
from pathlib import Path

import fiftyone as fo
import fiftyone.brain as fob
import numpy as np
import pytest

import visual_curation as vc
from visual_curation.core.brain_index import (VisualCurationSimilarityConfig,
                                              VisualCurationSimilarityIndex)
from visual_curation.core.similarity import similar_ids


def _names(ds):
    return dict(zip(ds.values("id"), [Path(p).name for p in ds.values("filepath")]))


def test_app_similarity_tools_sort_by_our_vectors(fmnist_dataset):
    ds, truth = fmnist_dataset
    vc.compute_embeddings(ds, model="demo")
    key = vc.brain_key_for("demo")
    assert key == "vc_demo"
    assert ds.list_brain_runs(type=fob.Similarity) == [key]
    assert ds.list_brain_runs(type=fob.Similarity, supports_prompts=True) == [key]
    # the App builds the config from these two fields alone to read its capabilities
    conf = VisualCurationSimilarityConfig(embeddings_field=None, patches_field=None)
    assert conf.max_k is None and conf.supports_least_similarity is True

    index = ds.load_brain_results(key)
    assert isinstance(index, VisualCurationSimilarityIndex)
    assert index.total_index_size == len(ds)

    # by id: the query first (distance 0), then exactly our own find-similar order
    qid = ds.skip(7).first().id
    view = ds.sort_by_similarity(qid, k=10, brain_key=key, dist_field="sim_dist")
    ids = view.values("id")
    assert ids[0] == qid
    ours = [i for i, _ in similar_ids(ds, sample_id=qid, k=9, exclude_query=True)]
    assert ids[1:] == ours
    d = view.values("sim_dist")
    assert d[0] == pytest.approx(0.0, abs=1e-5) and d == sorted(d)

    # least similar: distances decreasing, none of the nearest
    far = ds.sort_by_similarity(qid, k=10, reverse=True, brain_key=key, dist_field="sim_dist")
    fd = far.values("sim_dist")
    assert fd == sorted(fd, reverse=True) and fd[-1] > d[-1]
    assert not set(far.values("id")) & set(ids)

    # a text prompt, embedded by our own (offline) model loader; the default index is ours
    top = ds.sort_by_similarity("a photo of a sneaker", k=20)
    labels = [truth[n]["true"] for n in (Path(p).name for p in top.values("filepath"))]
    assert sum(lab == "sneaker" for lab in labels) / 20 >= 0.8, labels

    # within a view: only its samples
    sub = ds.take(60, seed=3)
    got = sub.sort_by_similarity(qid, k=10, brain_key=key).values("id")
    assert len(got) == 10 and set(got) <= set(sub.values("id"))

    # a vector query
    _, vec, _ = index.store.vectors([qid])
    assert ds.sort_by_similarity(vec[0], k=3, brain_key=key).values("id")[0] == qid


def test_near_duplicates_and_leaky_splits_run_on_our_index(fmnist_dataset):
    ds, truth = fmnist_dataset
    vc.compute_embeddings(ds, model="demo")
    names = _names(ds)
    id_of = {n: i for i, n in names.items()}
    planted = {frozenset((id_of[n], id_of[t["dup_of"]])) for n, t in truth.items()
               if t.get("dup_of") and n in id_of and t["dup_of"] in id_of}
    assert len(planted) >= 5

    index = fob.compute_near_duplicates(ds, similarity_index="vc_demo", threshold=0.02)
    pairs = {frozenset((str(k), str(d))) for k, vs in index.neighbors_map.items() for d, _ in vs}
    assert planted <= pairs
    assert 0 < len(index.duplicate_ids) < len(ds) / 4
    assert set(index.duplicates_view().values("id")) >= {i for p in planted for i in p}

    rng = np.random.default_rng(5)
    split = rng.random(len(ds)) < 0.5
    ds.set_values("tags", [["train"] if s else ["test"] for s in split])
    leaks = fob.compute_leaky_splits(ds, splits=["train", "test"], similarity_index="vc_demo",
                                     threshold=0.02)
    tag_of = dict(zip(ds.values("id"), ds.values("tags")))
    crossing = [p for p in planted if len({tag_of[i][0] for i in p}) == 2]
    assert crossing, "the seeded split puts some planted pair across the splits"
    leak_ids = set(leaks.leaks_view().values("id"))
    assert all(p <= leak_ids for p in crossing)


def test_index_follows_the_table_and_leaves_with_delete_run(fmnist_dataset):
    ds, _ = fmnist_dataset
    held = ds.take(10, seed=2)
    saved = [(s.filepath, s.ground_truth.label) for s in held]
    ds.delete_samples(held)
    vc.compute_embeddings(ds, model="demo")
    index = ds.load_brain_results("vc_demo")
    n0 = index.total_index_size
    ds.add_samples([fo.Sample(filepath=fp, ground_truth=fo.Classification(label=lab))
                    for fp, lab in saved])
    assert vc.compute_embeddings(ds, model="demo").embedded == 10
    new_id = ds.match({"filepath": saved[0][0]}).first().id
    index = ds.load_brain_results("vc_demo", cache=False)
    assert index.total_index_size == n0 + 10
    assert ds.sort_by_similarity(new_id, k=1, brain_key="vc_demo").values("id") == [new_id]

    # the Brain's own index edits work on our table
    emb, sids, lids = index.get_embeddings(sample_ids=[new_id])
    assert emb.shape == (1, index.store.dim) and list(sids) == [new_id] and lids is None
    index.remove_from_index(sample_ids=[new_id])
    assert index.total_index_size == n0 + 9
    index.add_to_index(emb * 3.0, [new_id])          # stored L2-normalised
    back, _, _ = index.get_embeddings(sample_ids=[new_id])
    assert np.allclose(back, emb, atol=1e-5)

    removed = vc.delete_run(ds)
    assert removed["brain_runs"] == ["vc_demo"] and ds.list_brain_runs() == []

    # a user's own Brain run under our key is never replaced, nor removed by delete_run
    rng = np.random.default_rng(0)
    fob.compute_similarity(ds, embeddings=rng.standard_normal((len(ds), 8)), backend="sklearn",
                           brain_key="vc_demo")
    vc.compute_embeddings(ds, model="demo")
    assert ds.get_brain_info("vc_demo").config.method == "sklearn"
    assert vc.delete_run(ds)["brain_runs"] == [] and ds.list_brain_runs() == ["vc_demo"]


def test_object_patches_sort_by_our_vectors(detection_dataset):
    ds = detection_dataset
    vc.compute_embeddings(ds, model="demo", patches_field="ground_truth")
    key = vc.brain_key_for("demo", "ground_truth")
    assert ds.list_brain_runs(type=fob.Similarity, patches_field="ground_truth") == [key]
    patches = ds.to_patches("ground_truth")
    first = patches.first()
    label_id = first.ground_truth.id
    view = patches.sort_by_similarity(label_id, k=5, brain_key=key)
    got = view.values("ground_truth.id")
    assert len(got) == 5 and got[0] == label_id
    # by prompt, in the patches view: mostly the named class
    top = patches.sort_by_similarity("a photo of a trouser", k=5, brain_key=key)
    labels = top.values("ground_truth.label")
    assert labels.count("trouser") >= 3, labels
    # on the samples: images ordered by their best-matching object
    samples = ds.sort_by_similarity(label_id, k=3, brain_key=key)
    assert samples.first().id == first.sample_id
