"""compute_embeddings(engine="ray") on a real Ray cluster of two nodes (a head and a worker,
each its own raylet and processes) on 127.0.0.1: the same table a local run writes, incremental
re-runs, broken files, a worker killed mid-run, and a clear message where Ray is missing."""
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
from PIL import Image

import visual_curation as vc
from visual_curation.core import store as vcs

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ray_cluster():
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True,
                      head_node_args={"num_cpus": 1, "include_dashboard": False})
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    yield cluster
    cluster.shutdown()


def _table(ds):
    return vcs.VectorStore.for_dataset(ds, "demo")


def _vectors(ds):
    ids, vecs, _ = _table(ds).vectors()
    return dict(zip(ids, vecs))


def _embedder_processes():
    """The Ray actor processes that embed (their process title names the Embedder class)."""
    found = []
    for p in psutil.process_iter(["cmdline"]):
        cmd = " ".join(p.info.get("cmdline") or [])
        if "Embedder" in cmd and "ray::" in cmd:
            found.append(p)
    return found


def test_a_ray_cluster_writes_the_table_a_local_run_writes(fmnist_dataset, ray_cluster):
    ds, _ = fmnist_dataset
    local = vc.compute_embeddings(ds, model="demo")
    want = _vectors(ds)
    _table(ds).drop()

    run = vc.compute_embeddings(ds, model="demo", engine="ray",
                                ray_address=ray_cluster.address)
    assert run.embedded == local.embedded == len(ds) and run.errors == 0
    got = _vectors(ds)
    assert sorted(got) == sorted(want) == sorted(ds.values("id"))
    assert _table(ds).count() == len(ds)
    assert max(float(np.abs(got[i] - want[i]).max()) for i in want) < 1e-5

    again = vc.compute_embeddings(ds, model="demo", engine="ray",
                                  ray_address=ray_cluster.address)
    assert again.embedded == 0 and again.unchanged == len(ds)


def test_a_ray_rerun_embeds_only_changed_files_and_reports_broken_ones(
        fmnist_dataset, ray_cluster, tmp_path):
    import fiftyone as fo

    ds, _ = fmnist_dataset
    # the dataset's own files are shared with other tests: work on copies
    for s in ds.iter_samples(autosave=True):
        dst = tmp_path / Path(s.filepath).name
        shutil.copy(s.filepath, dst)
        s.filepath = str(dst)
    vc.compute_embeddings(ds, model="demo", engine="ray", ray_address=ray_cluster.address)
    before = _vectors(ds)
    changed, broken = ds.take(2, seed=3)
    Image.open(changed.filepath).convert("L").rotate(90).save(changed.filepath)
    Path(broken.filepath).write_bytes(b"not an image")
    new_path = tmp_path / "new-sample.png"
    Image.open(ds.first().filepath).convert("L").transpose(Image.FLIP_LEFT_RIGHT).save(new_path)
    new = fo.Sample(filepath=str(new_path))
    ds.add_sample(new)

    run = vc.compute_embeddings(ds, model="demo", engine="ray",
                                ray_address=ray_cluster.address)
    assert (run.embedded, run.errors, run.unchanged) == (2, 1, len(ds) - 3)
    after = _vectors(ds)
    # the changed file's row was replaced in the same commit (one row per id), the broken
    # file's stale row is gone and the reason is on its sample
    assert _table(ds).count() == len(after) == len(ds) - 1
    assert broken.id not in after and new.id in after
    assert float(np.abs(after[changed.id] - before[changed.id]).max()) > 1e-3
    assert all(np.array_equal(after[i], before[i]) for i in before
               if i not in (changed.id, broken.id))
    broken.reload()
    changed.reload()
    assert broken.vc_error and changed.vc_error is None


def test_object_crops_on_ray_match_the_local_crops(detection_dataset, ray_cluster):
    ds = detection_dataset
    kind = "patches_ground_truth"
    vc.compute_embeddings(ds, model="demo", patches_field="ground_truth")
    table = vcs.VectorStore.for_dataset(ds, "demo", kind)
    ids, want, _ = table.vectors()
    table.drop()
    run = vc.compute_embeddings(ds, model="demo", patches_field="ground_truth", engine="ray",
                                ray_address=ray_cluster.address)
    got_ids, got, ext = vcs.VectorStore.for_dataset(ds, "demo", kind).vectors(
        ids, extra=["sample_id", "box"])
    assert run.embedded == len(ids) > 0 and got_ids == ids
    assert float(np.abs(got - want).max()) < 1e-5
    assert all(b is not None and len(b) == 4 for b in ext["box"])


def test_an_embedder_decoding_in_threads_writes_what_a_local_run_writes(fmnist_dataset):
    """A GPU actor decodes in threads while its model embeds; here that actor runs in this
    process on CPU, without Ray, so the threaded path is checked where there is no GPU."""
    import pyarrow as pa

    from visual_curation.core import embed_ray, embeddings

    ds, _ = fmnist_dataset
    vc.compute_embeddings(ds, model="demo")
    want = _vectors(ds)
    table = _table(ds)
    dim = table.dim
    table.drop()
    table.create(dim)
    units, _ = embeddings._units(ds, None, {})
    actor = embed_ray.Embedder(**embed_ray.embedder_settings(
        table, model="demo", pretrained=None, device="cpu", batch_size=8, padding=0.1,
        min_box_size=8, threads=3))
    res = embed_ray.RayOutcome()
    for s in range(0, len(units), 100):
        batch = pa.Table.from_pylist(embed_ray.unit_rows(units[s:s + 100]))
        embed_ray.collect_outcomes(actor(batch).to_pydict(), res)
    assert _table(ds).count() == 0           # written, not committed
    embed_ray.commit(table, res.fragments)
    got = _vectors(ds)
    assert res.embedded == len(ds) and len(res.fragments) == -(-len(units) // 100)
    assert sorted(got) == sorted(want)
    assert max(float(np.abs(got[i] - want[i]).max()) for i in want) < 1e-5


def test_a_worker_killed_mid_run_loses_nothing_and_duplicates_nothing(
        fmnist_dataset, ray_cluster):
    ds, _ = fmnist_dataset
    vc.compute_embeddings(ds, model="demo")
    want = _vectors(ds)
    _table(ds).drop()

    seen = {"done": 0, "killed_at": None}

    def progress(pb):
        seen["done"] = pb.iteration

    def killer():
        deadline = time.time() + 240
        while time.time() < deadline and seen["killed_at"] is None:
            procs = _embedder_processes()
            # once some of the work is done and some is still to do, kill an embedding actor
            if procs and 0 < seen["done"] < len(ds) * 0.7:
                procs[-1].send_signal(signal.SIGKILL)
                seen["killed_at"] = seen["done"]
            time.sleep(0.05)

    t = threading.Thread(target=killer, daemon=True)
    t.start()
    # small fragments: many batches, so the kill lands mid-run
    run = vc.compute_embeddings(ds, model="demo", engine="ray", ray_address=ray_cluster.address,
                                write_every=16, progress=progress)
    t.join(5)
    assert seen["killed_at"] is not None, "no embedding actor was found to kill mid-run"
    print(f"killed an embedding actor with {seen['killed_at']} of {len(ds)} items done")
    assert run.embedded == len(ds) and run.errors == 0
    got = _vectors(ds)
    assert _table(ds).count() == len(ds) and sorted(got) == sorted(want)
    assert max(float(np.abs(got[i] - want[i]).max()) for i in want) < 1e-5


def test_the_operator_offers_a_ray_cluster_and_runs_on_it(fmnist_dataset, ray_cluster,
                                                         vc_helpers):
    import asyncio

    from fiftyone.operators.executor import _parse_ctx, resolve_type
    from fiftyone.operators.registry import OperatorRegistry

    ds, _ = fmnist_dataset
    uri = f"{vc_helpers.plugin_uri}/compute_embeddings"

    def form(params):
        req = _parse_ctx(ctx=dict(dataset=ds.name, view=None, selected=[], params=params))
        return asyncio.run(resolve_type(OperatorRegistry(), uri, req)).type.properties

    props = form({"model": "demo"})
    assert [c.value for c in props["engine"].view.choices] == ["local", "ray"]
    assert "ray_address" not in props
    props = form({"model": "demo", "engine": "ray"})
    assert "ray_address" in props and not getattr(props["ray_address"], "invalid", False)

    res = vc_helpers.run_operator("compute_embeddings", ds, params={
        "model": "demo", "engine": "ray", "ray_address": ray_cluster.address})
    assert res.error is None, res.error
    assert _table(ds).count() == len(ds) and sorted(_vectors(ds)) == sorted(ds.values("id"))


def test_an_address_where_no_cluster_runs_fails_at_once(fmnist_dataset):
    import socket

    ds, _ = fmnist_dataset
    with socket.socket() as s:   # a free port: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t = time.time()
    with pytest.raises(ConnectionError, match="No Ray cluster answers"):
        vc.compute_embeddings(ds, model="demo", engine="ray", ray_address=f"127.0.0.1:{port}")
    assert time.time() - t < 30
    assert _table(ds).count() == 0   # nothing written


def test_without_ray_installed_the_error_says_how_to_install_it(fmnist_small, vc_helpers):
    # persistent: the child process must not delete it (or others) when it exits
    ds, _ = vc_helpers.load_bench_dataset_persistent(fmnist_small, "vc-test-ray-missing")
    try:
        code = (
            "import sys; sys.modules['ray'] = None\n"
            "import fiftyone as fo, visual_curation as vc\n"
            "from visual_curation.operators.embeddings import ray_problem\n"
            "print('FORM', ray_problem())\n"
            f"ds = fo.load_dataset({ds.name!r})\n"
            "try:\n"
            "    vc.compute_embeddings(ds, model='demo', engine='ray')\n"
            "except ImportError as e:\n"
            "    print('SDK', e)\n")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             timeout=300)
        hint = "pip install 'fiftyone-visual-curation[ray]'"
        assert "FORM engine='ray' needs" in out.stdout and hint in out.stdout, \
            out.stderr[-2000:]
        assert out.stdout.count(hint) == 2
        assert not _table(ds).exists()   # nothing written
    finally:
        vc_helpers.cleanup(ds)
