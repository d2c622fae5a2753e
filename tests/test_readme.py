"""The README's Python blocks, run as written.

Every fenced ``python`` block of README.md runs in order in one namespace, on the datasets the
README names (``my-dataset``: planted-truth images with ``ground_truth``, ``detections`` and
``my_vectors``; ``my-videos``: two short videos). Only the placeholders in ``PLACEHOLDERS`` are
replaced (each must still be in the README, so the two cannot drift apart). A block that needs
the internet must, offline, end in the loader's clear message."""
import re
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"


def python_blocks(text):
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def test_readme_blocks_are_found():
    blocks = python_blocks(README.read_text())
    assert len(blocks) >= 3
    assert any("vc.analyze(" in b for b in blocks)


@pytest.fixture()
def readme_datasets(tmp_root, vc_helpers, tmp_path):
    import fiftyone as fo

    import visual_curation as vc

    folder = vc_helpers.make_bench(tmp_root / "readme120", "fmnist", n=120, seed=5)
    ds, _ = vc_helpers.load_bench_dataset(folder, "my-dataset")
    # one box per sample around the item, labelled like the sample
    labels = ds.values("ground_truth.label")
    ds.set_values("detections", [fo.Detections(detections=[fo.Detection(
        label=lab, bounding_box=[0.1, 0.1, 0.8, 0.8])]) for lab in labels])
    rng = np.random.default_rng(5)
    ds.set_values("my_vectors", [rng.normal(size=32).tolist() for _ in labels])

    from test_video import _scene, _stamp, _write

    a, b = _stamp(0), _stamp(1)
    vids = fo.Dataset("my-videos")
    vids.add_samples([fo.Sample(filepath=str(_write(tmp_path / f"v{i}.avi", frames)))
                      for i, frames in enumerate([_scene(a, 2, "pan") + _scene(b, 2, "zoom"),
                                                  _scene(b, 2, "pan")])])
    yield ds, vids
    for d in (ds, vids):
        try:
            vc.delete_run(d)
        except Exception:  # noqa: BLE001
            pass
    for name in fo.list_datasets():
        if name in ("my-dataset", "my-videos") or name.startswith("my-videos"):
            fo.delete_dataset(name)


@pytest.fixture()
def vit_checkpoint(tmp_path):
    """A ViT-B-32 checkpoint on disk (random weights: what matters is the loading path)."""
    import open_clip
    import torch

    net = open_clip.create_model("ViT-B-32", pretrained=None)
    path = tmp_path / "my_clip.pt"
    torch.save(net.state_dict(), path)
    return path


@pytest.mark.slow
def test_readme_python_blocks_run_as_written(readme_datasets, vit_checkpoint):
    ds, vids = readme_datasets
    placeholders = {
        "/models/my_clip.pt": str(vit_checkpoint),
        "/path/to/query.jpg": ds.first().filepath,
    }
    text = README.read_text()
    for p in placeholders:
        assert p in text, f"README no longer shows {p!r}: update PLACEHOLDERS"
    namespace = {}
    ran = 0
    for block in python_blocks(text):
        code = block
        for p, real in placeholders.items():
            code = code.replace(p, real)
        if "laion2b_s34b_b79k" in code:   # needs the internet: offline, a clear message
            try:
                exec(compile(code, "README.md", "exec"), namespace)
            except RuntimeError as e:
                assert "pass its local path" in str(e) and "model='demo'" in str(e)
            ran += 1
            continue
        exec(compile(code, "README.md", "exec"), namespace)
        ran += 1
    assert ran == len(python_blocks(text))
    # what the blocks promise
    assert len(namespace["view"]) >= 1
    frames = namespace["frames"]
    assert len(frames) >= 2 and frames.has_sample_field("vc_cluster_1")
    assert not any(f.startswith("vc_") for f in ds.get_field_schema())   # delete_run ran
    assert ds.has_sample_field("my_vectors") and ds.has_sample_field("detections")


@pytest.mark.slow
def test_analyze_with_embeddings_field(fmnist_dataset):
    """``analyze(embeddings_field=...)`` on samples that carry vectors: planted copies are
    found from those vectors (here the demo model's, copied into a field)."""
    import visual_curation as vc
    from visual_curation.core import store as vcs
    from visual_curation.core.similarity import latest_embeddings

    ds, truth = fmnist_dataset
    vc.compute_embeddings(ds, model="demo")
    conf = latest_embeddings(ds, model="demo")
    got_ids, vecs, _ = vcs.VectorStore(conf["table"], uri=conf["uri"]).vectors(ds.values("id"))
    ds.set_values("my_vectors", dict(zip(got_ids, vecs.tolist())), key_field="id")
    vc.delete_run(ds)
    summary = vc.analyze(ds, embeddings_field="my_vectors", analyses=["duplicates", "clusters"])
    assert summary["analysed"] == len(ds)
    assert summary["embeddings"] == vcs.table_name(ds, "field-my_vectors", "images")
    names = [Path(p).name for p in ds.values("filepath")]
    groups = dict(zip(names, ds.values("vc_dup_group")))
    planted = [(n, t["dup_of"]) for n, t in truth.items() if t.get("dup_of")]
    together = sum(groups.get(a) is not None and groups.get(a) == groups.get(b)
                   for a, b in planted)
    assert together >= 0.8 * len(planted)


def test_readme_field_table_lists_every_field_of_the_registry():
    from visual_curation.core.analyzers import FIELD_SPECS, LEVELS

    text = README.read_text()
    table = text[text.index("| field | meaning |"):]
    table = table[:table.index("\n\n")]
    for name in FIELD_SPECS:
        if name.startswith("vc_cluster_"):
            assert f"`vc_cluster_1` … `vc_cluster_{LEVELS}`" in table
        else:
            assert f"`{name}`" in table, f"README's field table lacks {name}"
