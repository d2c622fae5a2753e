"""compute_embeddings / find_similar on real images, real MongoDB and real LanceDB."""
import io
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import visual_curation as vc
from visual_curation.core import store as vcs
from visual_curation.core.embeddings import embeddings_run_key
from visual_curation.core.fields import FieldConflictError


def _store(ds, kind="images"):
    return vcs.VectorStore.for_dataset(ds, "demo", kind)


def test_incremental_rerun_embeds_nothing(fmnist_dataset):
    ds, _ = fmnist_dataset
    first = vc.compute_embeddings(ds, model="demo")
    assert first.embedded == len(ds) and first.errors == 0
    assert _store(ds).count() == len(ds)
    second = vc.compute_embeddings(ds, model="demo")
    assert second.embedded == 0 and second.unchanged == len(ds)
    assert embeddings_run_key("demo", "images") in ds.list_runs()


def test_batched_preprocessing_matches_the_models_own_transform(fmnist_dataset):
    """Decoding workers hand back uint8 arrays and normalisation runs per batch: the vectors
    must be the ones the model's own per-image open_clip transform gives."""
    import torch

    from visual_curation.core import images as vci
    from visual_curation.core.models import load_model

    ds, _ = fmnist_dataset
    lm = load_model("demo")
    assert lm.fast
    odd = [Image.new("RGB", (300, 90), (10, 200, 30)), Image.new("RGB", (20, 33), (250, 1, 9)),
           Image.effect_noise((61, 47), 40).convert("RGB")]
    want = torch.stack([lm.preprocess(im) for im in odd])
    assert torch.allclose(lm.collate([lm.prepare(im) for im in odd]), want, atol=1e-5)

    run = vc.compute_embeddings(ds, model="demo")
    assert run.embedded == len(ds)
    ids, paths = ds.values(["id", "filepath"])
    got_ids, got, _ = _store(ds).vectors(ids)
    assert list(got_ids) == list(ids)
    ref = np.concatenate([
        lm.embed_tensors(torch.stack([lm.preprocess(vci.load_image(p)[0])
                                      for p in paths[i:i + 32]]))
        for i in range(0, len(paths), 32)])
    assert np.abs(got - ref).max() < 1e-4


def test_deleted_and_added_samples_stay_in_sync(fmnist_dataset, tmp_path):
    import fiftyone as fo

    ds, _ = fmnist_dataset
    vc.compute_embeddings(ds, model="demo")
    gone = ds.take(7, seed=3)
    gone_ids = set(gone.values("id"))
    ds.delete_samples(gone)
    src = Image.open(ds.first().filepath)
    new = []
    for i in range(4):
        p = tmp_path / f"new{i}.png"
        src.rotate(90 * i).save(p)
        new.append(fo.Sample(filepath=str(p)))
    ds.add_samples(new)
    r = vc.compute_embeddings(ds, model="demo")
    assert (r.removed, r.embedded) == (7, 4)
    ids, _, _ = _store(ds).vectors()
    assert set(ids) == set(ds.values("id")) and not gone_ids & set(ids)


def test_view_run_does_not_drop_rows_outside_the_view(fmnist_dataset):
    ds, _ = fmnist_dataset
    vc.compute_embeddings(ds, model="demo")
    r = vc.compute_embeddings(ds.take(20, seed=0), model="demo")
    assert r.removed == 0 and r.embedded == 0
    assert _store(ds).count() == len(ds)


def test_changed_and_touched_files(fmnist_dataset):
    import os

    ds, _ = fmnist_dataset
    vc.compute_embeddings(ds, model="demo")
    a, b = ds.take(2, seed=5)
    os.utime(a.filepath, (1_000_000_000, 1_000_000_000))      # same bytes, new mtime
    Image.open(b.filepath).transpose(Image.FLIP_TOP_BOTTOM).save(b.filepath)  # new content
    r = vc.compute_embeddings(ds, model="demo")
    assert (r.embedded, r.touched) == (1, 1)
    r = vc.compute_embeddings(ds, model="demo")
    assert (r.embedded, r.touched, r.unchanged) == (0, 0, len(ds))


def _write_unusual(folder):
    """Valid but unusual image files, and broken ones."""
    base = Image.open(io.BytesIO(_png_bytes())).convert("RGB").resize((96, 64))
    ok = {}
    base.convert("CMYK").save(folder / "cmyk.jpg"); ok["cmyk.jpg"] = True
    arr16 = (np.asarray(base.convert("L"), dtype=np.uint16) * 257)
    Image.fromarray(arr16).save(folder / "sixteen.png"); ok["sixteen.png"] = True
    pal = base.convert("P", palette=Image.ADAPTIVE, colors=16)
    pal.info["transparency"] = 0
    pal.save(folder / "palette.png", transparency=0); ok["palette.png"] = True
    exif = Image.Exif(); exif[0x0112] = 6
    base.save(folder / "rotated.jpg", exif=exif); ok["rotated.jpg"] = True
    frames = [base, base.rotate(180)]
    frames[0].save(folder / "anim.gif", save_all=True, append_images=frames[1:]); ok["anim.gif"] = True
    Image.new("RGB", (12000, 9000), (120, 30, 200)).save(folder / "huge.jpg", quality=50)
    ok["huge.jpg"] = True
    good = (folder / "cmyk.jpg").read_bytes()
    (folder / "truncated.jpg").write_bytes(good[: len(good) // 3]); ok["truncated.jpg"] = False
    (folder / "empty.jpg").write_bytes(b""); ok["empty.jpg"] = False
    (folder / "text.jpg").write_text("this is not an image"); ok["text.jpg"] = False
    ok["missing.jpg"] = False
    return ok


def _png_bytes():
    import gzip

    with gzip.open("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz") as f:
        x = np.frombuffer(f.read(), np.uint8, offset=16)[: 28 * 28].reshape(28, 28)
    buf = io.BytesIO()
    Image.fromarray(x).save(buf, format="PNG")
    return buf.getvalue()


def test_broken_files_are_reported_and_unusual_files_work(tmp_path, request, figures):
    import fiftyone as fo

    ok = _write_unusual(tmp_path)
    name = "vc-test-broken"
    if fo.dataset_exists(name):
        fo.delete_dataset(name)
    ds = fo.Dataset(name)
    try:
        ds.add_samples([fo.Sample(filepath=str(tmp_path / f)) for f in ok])
        r = vc.compute_embeddings(ds, model="demo")
        assert r.errors == 4 and r.embedded == 6
        figures("files", tried=len(ok), broken=sum(not g for g in ok.values()),
                unusual=sum(ok.values()), embedded=r.embedded, reported=r.errors)
        errors = dict(zip([Path(p).name for p in ds.values("filepath")], ds.values("vc_error")))
        for f, good in ok.items():
            assert (errors[f] is None) == good, (f, errors[f])
        assert "not found" in errors["missing.jpg"]
        assert "0 bytes" in errors["empty.jpg"]
        assert "not an image" in errors["text.jpg"]
        assert "truncated" in errors["truncated.jpg"] or "decode" in errors["truncated.jpg"]
        # the rotated JPEG is embedded upright: same vector as the upright pixels
        upright = Image.open(tmp_path / "rotated.jpg")
        from PIL import ImageOps

        upright = ImageOps.exif_transpose(upright)
        v1 = vc.embed_image(upright, model="demo")
        ids, vecs, _ = vcs.VectorStore.for_dataset(ds, "demo", "images").vectors(
            [ds.match({"filepath": str(tmp_path / "rotated.jpg")}).first().id])
        assert float(vecs[0] @ v1) > 0.99
        # fixing a file clears its error on the next run
        shutil.copy(tmp_path / "cmyk.jpg", tmp_path / "missing.jpg")
        r = vc.compute_embeddings(ds, model="demo")
        assert r.embedded == 1 and r.errors == 3
        assert ds.match({"filepath": str(tmp_path / "missing.jpg")}).first().vc_error is None
    finally:
        vc.delete_run(ds)
        ds.delete()


def test_object_crops_keyed_by_label_id(detection_dataset):
    ds = detection_dataset
    r = vc.compute_embeddings(ds, model="demo", patches_field="ground_truth")
    lids = [d.id for s in ds for d in s.ground_truth.detections]
    specks = [d.id for s in ds for d in s.ground_truth.detections if d.label == "speck"]
    assert r.skipped == len(specks) and r.embedded == len(lids) - len(specks)
    store = vcs.VectorStore.for_dataset(ds, "demo", "patches_ground_truth")
    ids, vecs, extra = store.vectors(extra=["sample_id", "box"])
    assert set(ids) == set(lids) - set(specks)
    reasons = [d["vc_error"] for s in ds for d in s.ground_truth.detections if d.label == "speck"]
    assert all("too small" in x for x in reasons)
    # a crop is nearer its own class than a random other crop, on average
    labels = {d.id: d.label for s in ds for d in s.ground_truth.detections}
    view = vc.find_similar(ds, sample_id=ids[0], k=3, patches_field="ground_truth")
    assert len(view) == 3
    assert vc.compute_embeddings(ds, model="demo", patches_field="ground_truth").embedded == 0
    assert labels  # sanity


def test_text_search_ranks_sneakers_first(tmp_root):
    import fiftyone as fo
    from conftest import load_bench_dataset, make_bench

    folder = make_bench(tmp_root / "fm1000", "fmnist", n=1000, seed=2, noise=0.0)
    ds, truth = load_bench_dataset(folder, "vc-test-text")
    try:
        vc.compute_embeddings(ds, model="demo")
        view = vc.find_similar(ds, text="a photo of a sneaker", k=20)
        names = [Path(p).name for p in view.values("filepath")]
        precision = np.mean([truth[n]["true"] == "sneaker" for n in names])
        assert precision >= 0.8, precision
        # sorted nearest first, and an image query finds its own near-copies
        hits = vc.core.similar_ids(ds, text="a photo of a sneaker", k=20)
        d = [x for _, x in hits]
        assert d == sorted(d)
    finally:
        vc.delete_run(ds)
        fo.delete_dataset(ds.name)


def test_bring_your_own_vectors(fmnist_dataset):
    ds, _ = fmnist_dataset
    rng = np.random.default_rng(0)
    ds.set_values("my_vec", [rng.normal(size=16) for _ in range(len(ds))])
    r = vc.compute_embeddings(ds, embeddings_field="my_vec")
    assert r.embedded == len(ds)
    ids, vecs, _ = vcs.VectorStore.for_dataset(ds, "field-my_vec").vectors()
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    assert ds.has_sample_field("my_vec")  # the user's field is untouched


def test_bring_your_own_array(fmnist_dataset):
    """Brain-style ``embeddings=`` array: one row per sample of the view, in its order."""
    ds, _ = fmnist_dataset
    view = ds.skip(10)
    arr = np.random.default_rng(1).normal(size=(len(view), 8)).astype(np.float32)
    arr[3] = np.nan                                   # a sample without a vector is skipped
    r = vc.import_embeddings(view, embeddings=arr, name="my model")
    assert r.embedded == len(view) - 1 and r.skipped == 1
    ids, vecs, _ = vcs.VectorStore.for_dataset(ds, "array-my_model").vectors(view.values("id"))
    want = np.delete(arr, 3, axis=0)
    np.testing.assert_allclose(vecs, want / np.linalg.norm(want, axis=1, keepdims=True),
                               atol=1e-6)
    assert ids == [i for j, i in enumerate(view.values("id")) if j != 3]
    # the same array again: nothing rewritten; one changed row: that row only
    assert vc.import_embeddings(view, embeddings=arr, name="my model").embedded == 0
    arr[5] += 1.0
    assert vc.import_embeddings(view, embeddings=arr, name="my model").embedded == 1
    vc.analyze(view, analyses=["uniqueness"])   # the latest embeddings: this array
    assert view.exists("vc_uniqueness").count() == len(view) - 1
    # the analyses hand back arrays: every written value is a plain number, or None where the
    # sample has no vector (row 3) or no label (row 7: no mislabel, no outlier score)
    unlabelled = view.skip(7).first()
    unlabelled.ground_truth = None
    unlabelled.save()
    vc.analyze(view, analyses=["clusters", "mislabels", "outliers"], label_field="ground_truth",
               force=True)
    got = view.values(["vc_cluster_1", "vc_mislabel", "vc_outlier"])
    assert [c[3] for c in got] == [None, None, None]
    assert got[0][7] is not None and got[1][7] is None and got[2][7] is None
    rest = [j for j in range(len(view)) if j not in (3, 7)]
    assert all(type(got[0][j]) is int for j in rest)
    assert all(type(c[j]) is float and 0.0 <= c[j] <= 1.0 for c in got[1:] for j in rest)
    with pytest.raises(ValueError, match="in the collection.s order"):
        vc.import_embeddings(view, embeddings=arr[:5])
    with pytest.raises(ValueError, match="either"):
        vc.import_embeddings(view)
    with pytest.raises(ValueError, match="CLIP"):
        vc.find_similar(view, text="a sneaker")


def test_nothing_found_still_creates_the_fields(fmnist_dataset):
    """No duplicates in the view: vc_dup_group is all None but exists (typed, filterable), and
    the identical re-run is a no-op."""
    from fiftyone import ViewField as F
    import fiftyone.core.fields as fof

    ds, _ = fmnist_dataset
    view = ds.match(F("bench_truth_kind") == "clean").limit(60)
    vc.compute_embeddings(view, model="demo")
    r = vc.analyze(view, analyses=["duplicates"])
    assert r.get("issues", {}).get("duplicate") == 0
    assert ds.has_sample_field("vc_dup_group") and ds.has_sample_field("vc_duplicate")
    assert isinstance(ds.get_field("vc_dup_group"), fof.StringField)
    assert view.exists("vc_dup_group").count() == 0
    assert vc.analyze(view, analyses=["duplicates"]).get("skipped") is True


def test_users_own_field_is_never_overwritten(fmnist_dataset):
    ds, _ = fmnist_dataset
    ds.set_values("vc_error", ["mine"] * len(ds))
    with pytest.raises(FieldConflictError):
        vc.compute_embeddings(ds, model="demo")
    assert set(ds.values("vc_error")) == {"mine"}


def test_ann_index_and_search(fmnist_dataset):
    ds, _ = fmnist_dataset
    vc.compute_embeddings(ds, model="demo")
    store = _store(ds)
    assert store.ensure_index(min_rows=256)
    assert store.has_index()
    ids, vecs, _ = store.vectors()
    hits = store.search(vecs[0], k=5)
    assert hits[0][0] == ids[0]


def test_hostile_strings_never_reach_filters():
    from visual_curation.core import config as cfg

    for bad in ["x' OR 1=1 --", "'; DROP TABLE t; --", "é" * 10, "a" * 5000]:
        with pytest.raises(ValueError):
            cfg.check_id(bad)
    assert cfg.sql_string("it's") == "'it''s'"


def test_large_vector_reads_are_memory_mapped(fmnist_dataset, tmp_path, monkeypatch):
    """Vectors larger than a share of the machine's memory are read into a memory-mapped file
    (unlinked at once: nothing left behind); same rows and values, and ``analyze`` on them
    writes the same fields as in memory."""
    ds, _ = fmnist_dataset
    vc.compute_embeddings(ds, model="demo")
    store = _store(ds)
    ids = ds.values("id")
    want = ids[::3] + ["no-such-id"] + ids[1::3]
    ref_ids, ref, _ = store.vectors(want, dtype=np.float16)
    spill = tmp_path / "spill"
    got_ids, got, _ = store.vectors(want, dtype=np.float16, mmap_dir=str(spill))
    assert isinstance(got, np.memmap) or isinstance(got.base, np.memmap)
    assert got_ids == ref_ids and len(got_ids) == len(want) - 1
    assert np.array_equal(got, ref)
    all_ids, all_v, _ = store.vectors(mmap_dir=str(spill))
    assert np.array_equal(all_v, store.vectors(all_ids)[1])
    assert list(spill.iterdir()) == []                      # unlinked while mapped

    assert vcs.mmap_dir_for(10 ** 6, store.uri) is None     # small reads stay in memory
    monkeypatch.setattr(vcs, "MMAP_SHARE", 0.0)
    assert vcs.mmap_dir_for(10 ** 6, store.uri) == str(Path(store.uri) / ".vc_tmp")
    fields = ["vc_dup_group", "vc_uniqueness", "vc_cluster_1", "vc_cluster_5", "vc_mislabel",
              "vc_outlier"]
    mapped = vc.analyze(ds, label_field="ground_truth", force=True, incremental=False)
    got_f = {f: ds.values(f) for f in fields if ds.has_sample_field(f)}
    monkeypatch.setattr(vcs, "MMAP_SHARE", 0.25)
    vc.analyze(ds, label_field="ground_truth", force=True, incremental=False)
    assert got_f == {f: ds.values(f) for f in got_f}
    assert len(got_f) == len(fields) and mapped["analysed"] == len(ds)
    assert list((Path(store.uri) / ".vc_tmp").iterdir()) == []
