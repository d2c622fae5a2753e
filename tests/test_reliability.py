"""Reliability: interrupted runs, concurrent runs, deleted stores, clones, user fields,
hostile strings — real MongoDB, real LanceDB, real images."""
import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import visual_curation as vc
from visual_curation.core import fields as vcf
from visual_curation.core import store as vcs
from visual_curation.core.locks import RunLockedError, run_lock


def test_second_run_on_same_dataset_gets_a_clear_lock_error(fmnist_dataset):
    ds, _ = fmnist_dataset
    with run_lock(ds, "embeddings"):
        with pytest.raises(RunLockedError, match="Another Visual Curation run"):
            vc.compute_embeddings(ds, model="demo")
    # once released, the run goes through
    assert vc.compute_embeddings(ds, model="demo").embedded == len(ds)


def test_concurrent_runs_serialize_with_wait(fmnist_dataset):
    ds, _ = fmnist_dataset
    results = []

    def work():
        results.append(vc.compute_embeddings(ds, model="demo", wait=120))

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.embedded for r in results) == [0, len(ds)]
    assert vcs.VectorStore.for_dataset(ds, "demo").count() == len(ds)


def _worker_env():
    """The environment of a worker process that is killed on purpose: this process connects
    first (FiftyOne's database service is up and this process is its owner or a registered
    client), and the worker reaches that same mongod through ``FIFTYONE_DATABASE_URI``, so it
    never starts, registers with or shuts down the service."""
    import fiftyone as fo
    import fiftyone.core.odm.database as fodb

    fo.list_datasets()
    env = dict(os.environ)
    if not env.get("FIFTYONE_DATABASE_URI"):
        host, port = fodb.get_db_client().address
        env["FIFTYONE_DATABASE_URI"] = f"mongodb://{host}:{port}"
    return env


def _spawn(script, *args, env):
    # its own session: a signal meant for it never reaches anything else, and nothing sent to
    # this test's process group reaches it
    return subprocess.Popen([sys.executable, str(script), *map(str, args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def _kill(p):
    """SIGKILL to the worker's own pid only; True when it was still running."""
    if p.poll() is not None:
        return False
    os.kill(p.pid, signal.SIGKILL)
    return True


# Workers leave with os._exit: a SIGKILLed run never reaches FiftyOne's atexit clean-up either,
# and that clean-up deletes non-persistent datasets when it believes it is the last client.
_EMBED_WORKER = textwrap.dedent("""
    import os, sys
    import fiftyone as fo
    import visual_curation as vc
    ds = fo.load_dataset(sys.argv[1]).limit(int(sys.argv[2]))
    # ViT-B-32 with random weights: the real model's cost, so the run lasts long enough to kill
    r = vc.compute_embeddings(ds, model="ViT-B-32", pretrained=None, batch_size=8,
                              write_every=8, num_workers=1)
    print("EMBEDDED", r.embedded, flush=True)
    os._exit(0)
""")

_ANALYZE_WORKER = textwrap.dedent("""
    import os, sys, time
    import fiftyone as fo
    import visual_curation as vc
    ds = fo.load_dataset(sys.argv[1])
    print("GO", time.time(), flush=True)
    vc.analyze(ds, label_field="ground_truth", force=True)  # every run rewrites
    print("DONE", time.time(), flush=True)
    os._exit(0)
""")


def _created(store):
    t = store.read(["id", "created_at"])
    return dict(zip(t.column("id").to_pylist(), t.column("created_at").to_pylist()))


def _check_every_version(store):
    """Every LanceDB version of the table opens and holds each id once (never torn)."""
    from visual_curation.core.store import connect

    tbl = connect(store.uri).open_table(store.name)
    versions = [v["version"] if isinstance(v, dict) else v.version for v in tbl.list_versions()]
    for v in versions:
        tbl.checkout(v)
        ids = tbl.to_arrow().column("id").to_pylist()
        assert len(ids) == len(set(ids)), f"version {v} holds duplicate ids"
    return len(versions)


def test_sigkill_at_random_points_never_loses_or_tears(fmnist_dataset, tmp_path, figures):
    ds, _ = fmnist_dataset
    ds.persistent = True  # visible to the workers whatever happens to this process's clean-up
    n_items = 64
    script = tmp_path / "embed_worker.py"
    script.write_text(_EMBED_WORKER)
    env = _worker_env()
    rng = random.Random(0)
    store = vcs.VectorStore.for_dataset(ds, "ViT-B-32-random")
    kills, recomputed, counts, kill_points, last_version = 0, 0, [], [], 0
    # kill once the table holds a random number of rows, at a random moment after that
    # (mid-batch, mid-decode or mid-commit); a point already passed kills during start-up
    for target in sorted(rng.sample(range(1, n_items - 16), 3)):
        before = _created(store) if store.exists() else {}
        p = _spawn(script, ds.name, n_items, env=env)
        deadline = time.time() + 120
        while time.time() < deadline and p.poll() is None:
            if store.exists() and store.count() >= target:
                break
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.2))
        if _kill(p):
            kills += 1
            kill_points.append(target)
        _, err = p.communicate()
        assert p.returncode in (0, -signal.SIGKILL), err[-3000:]
        after = _created(store)
        ids, vecs, _ = store.vectors()
        assert len(ids) == len(set(ids)) == len(after) == len(vecs)  # a consistent version
        assert set(before) <= set(after)  # finished work is never lost
        # a row written by an earlier run keeps its vector and its write time
        recomputed += sum(after[i] != t for i, t in before.items())
        version = store.table.version
        assert version >= last_version
        last_version = version
        counts.append(len(after))
    assert kills >= 2, kill_points
    before = _created(store)
    final = vc.compute_embeddings(ds.limit(n_items), model="ViT-B-32", pretrained=None)
    after = _created(store)
    recomputed += sum(after[i] != t for i, t in before.items())
    assert final.embedded == n_items - len(before)  # finished vectors are not recomputed
    assert recomputed == 0
    assert store.count() == n_items
    ids, vecs, _ = store.vectors()
    assert sorted(ids) == sorted(ds.limit(n_items).values("id")) and vecs.shape[0] == n_items
    n_versions = _check_every_version(store)
    figures("embedding_kills", kills=kills, rows_at_kill=counts, items=n_items,
            resumed_embedded=final.embedded, recomputed=recomputed,
            versions_checked=n_versions)


def _key_counts(ds):
    """``{top-level key: number of sample documents holding it}`` for every vc_ key."""
    raw = ds._sample_collection
    out = {}
    for d in raw.aggregate([{"$project": {"k": {"$objectToArray": "$$ROOT"}}},
                            {"$unwind": "$k"}, {"$group": {"_id": "$k.k", "n": {"$sum": 1}}}]):
        if d["_id"].startswith("vc_"):
            out[d["_id"]] = d["n"]
    return out


def _half_written(ds, n):
    """vc_ fields (not the temporary ones) that some samples lack or that the schema does not
    declare — what a torn write would leave."""
    ds.reload()
    declared = {f for f in ds.get_field_schema() if f.startswith("vc_")
                and not f.startswith(vcf.TMP_PREFIX)}
    counts = _key_counts(ds)
    keys = {k: c for k, c in counts.items() if not k.startswith(vcf.TMP_PREFIX)}
    torn = sorted({f for f in declared if keys.get(f, 0) != n}
                  | {k for k in keys if k not in declared})
    # what each torn field looks like: samples holding it / its temporary, and whether declared
    return [f"{f}: {keys.get(f, 0)}/{n} samples, declared={f in declared}" for f in torn]


def test_sigkill_during_analysis_never_leaves_a_half_written_field(fmnist_dataset, tmp_path,
                                                                   figures):
    ds, _ = fmnist_dataset
    ds.persistent = True
    n = len(ds)
    vc.compute_embeddings(ds, model="demo")
    script = tmp_path / "analyze_worker.py"
    script.write_text(_ANALYZE_WORKER)
    env = _worker_env()
    # one uninterrupted run: how long the analysis takes, and the fields it writes
    p = _spawn(script, ds.name, env=env)
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0, err[-3000:]
    stamps = dict(line.split() for line in out.splitlines() if line[:2] in ("GO", "DO"))
    duration = float(stamps["DONE"]) - float(stamps["GO"])
    written = _key_counts(ds)
    assert written and not _half_written(ds, n)
    rng = random.Random(1)
    kills, torn, pending = 0, [], 0
    for _ in range(3):
        p = _spawn(script, ds.name, env=env)
        assert p.stdout.readline().startswith("GO")
        time.sleep(rng.uniform(0.05, 0.6) * duration)
        kills += _kill(p)
        _, err = p.communicate()
        assert p.returncode in (0, -signal.SIGKILL), err[-3000:]
        # a kill inside the commit leaves its rename running in its own process: wait for it
        # (nothing here calls recover(), which would hide a commit that never finishes; a
        # commit whose process never started leaves the old values whole until the next run)
        pending += vcf.pending_commit(ds) is not None
        deadline = time.time() + 10
        while vcf.pending_commit(ds) is not None and time.time() < deadline:
            time.sleep(0.05)
        torn += _half_written(ds, n)
    vc.analyze(ds, label_field="ground_truth", force=True)  # the next run completes
    ds.reload()
    repaired = _key_counts(ds) == written and not _half_written(ds, n)
    figures("analysis_kills", kills=kills, fields=len(written), half_written=len(torn),
            commits_finished_after_kill=pending,
            torn=torn, repaired_by_next_run=repaired, analysis_seconds=round(duration, 2))
    assert kills >= 2
    assert repaired  # every field back, complete, no temporary left over
    assert not [f for f in ds.get_field_schema() if f.startswith(vcf.TMP_PREFIX)]
    assert torn == []


_COMMIT_WORKER = textwrap.dedent("""
    import os, sys
    import fiftyone as fo
    from visual_curation.core import fields as vcf
    ds = fo.load_dataset(sys.argv[1])
    v = float(sys.argv[2])
    vcf.set_sample_values(ds, {f"vc_probe_{i}": [v] * len(ds) for i in range(8)})
    os._exit(0)
""")


def test_sigkill_inside_the_field_commit_never_tears_a_field(fmnist_dataset, tmp_path, figures):
    """The run is killed once its commit is journaled. Either the commit process had the renames
    (it outlives the run: every field whole with the new values, without a further run) or it
    had not (every field whole with the old values, and the next write rolls the commit
    forward). Never a field on part of the samples."""
    ds, _ = fmnist_dataset
    ds.persistent = True
    n = len(ds)
    script = tmp_path / "commit_worker.py"
    script.write_text(_COMMIT_WORKER)
    env = _worker_env()
    p = _spawn(script, ds.name, 1, env=env)
    assert p.wait(timeout=120) == 0, p.stderr.read()[-3000:]
    before, outcomes = 1.0, []
    for attempt in range(2, 10):
        p = _spawn(script, ds.name, attempt, env=env)
        while p.poll() is None and vcf.pending_commit(ds) is None:
            time.sleep(0.0005)
        if not _kill(p):  # finished before its commit was seen: try again
            before = float(attempt)
            continue
        p.communicate()
        deadline = time.time() + 30
        while vcf.pending_commit(ds) is not None and time.time() < deadline:
            time.sleep(0.02)
        ds.reload()
        assert not _half_written(ds, n)
        values = {v for i in range(8) for v in ds.distinct(f"vc_probe_{i}")}
        if vcf.pending_commit(ds) is None:  # the commit process finished it
            assert values == {float(attempt)}
            outcomes.append("committed by its process")
        else:                               # it never had the renames: old values, whole
            assert values == {before}
            vcf.set_sample_values(ds, {"vc_probe_x": [0] * n})  # the next write
            assert {v for i in range(8) for v in ds.distinct(f"vc_probe_{i}")} == {
                float(attempt)}
            outcomes.append("rolled forward by the next write")
        assert not _half_written(ds, n)
        before = float(attempt)
        if len(outcomes) == 4:
            break
    figures("commit_kills", kills_inside_commit=len(outcomes), fields=8, half_written=0,
            outcomes=outcomes)
    assert len(outcomes) >= 3


def test_a_commit_left_pending_is_finished_by_the_next_write(fmnist_dataset):
    """Roll forward: when even the commit process never ran, the old values stay whole and the
    next write (or recover()) merges the staged rows first."""
    ds, _ = fmnist_dataset
    n = len(ds)
    vcf.set_sample_values(ds, {"vc_probe_a": [1.0] * n, "vc_probe_b": ["x"] * n})
    # what a run killed right after journaling its commit leaves: staged rows + journal
    stage = vcf._stage(ds, ds.values("id"), {"vc_probe_a": [2.0] * n, "vc_probe_b": ["y"] * n})
    vcf._journal().insert_one({"_id": ds._sample_collection_name, "stage": stage})
    assert ds.distinct("vc_probe_a") == [1.0] and not _half_written(ds, n)
    vcf.set_sample_values(ds, {"vc_probe_c": [3] * n})
    assert vcf.pending_commit(ds) is None
    assert ds.distinct("vc_probe_a") == [2.0] and ds.distinct("vc_probe_b") == ["y"]
    assert ds.distinct("vc_probe_c") == [3]
    assert not _half_written(ds, n)
    assert stage not in ds._sample_collection.database.list_collection_names()


def test_deleted_lancedb_folder_gives_a_recompute_path(fmnist_dataset):
    ds, _ = fmnist_dataset
    vc.compute_embeddings(ds, model="demo")
    store = vcs.VectorStore.for_dataset(ds, "demo")
    shutil.rmtree(os.path.join(store.uri, store.name + ".lance"))
    with pytest.raises(FileNotFoundError, match="compute_embeddings"):
        vc.find_similar(ds, sample_id=ds.first().id, k=3)
    r = vc.compute_embeddings(ds, model="demo")
    assert r.embedded == len(ds)
    assert len(vc.find_similar(ds, sample_id=ds.first().id, k=3)) == 3


def test_clone_never_shares_the_originals_table(fmnist_dataset):
    ds, _ = fmnist_dataset
    vc.compute_embeddings(ds, model="demo")
    clone = ds.clone()
    try:
        clone.delete_samples(clone.take(10, seed=0))
        r = vc.compute_embeddings(clone, model="demo")
        assert r.embedded == len(clone)  # its own table
        assert vcs.VectorStore.for_dataset(ds, "demo").count() == len(ds)
        vc.delete_run(clone)
        assert vcs.VectorStore.for_dataset(ds, "demo").count() == len(ds)
    finally:
        clone.delete()


def test_partial_view_write_is_all_or_nothing_and_keeps_other_samples(fmnist_dataset):
    ds, _ = fmnist_dataset
    vcf.set_sample_values(ds, {"vc_score": [1.0] * len(ds)})
    view = ds.limit(5)
    vcf.set_sample_values(view, {"vc_score": [2.0] * 5})
    vals = ds.values("vc_score")
    assert vals[:5] == [2.0] * 5 and set(vals[5:]) == {1.0}
    assert not [f for f in ds.get_field_schema() if f.startswith(vcf.TMP_PREFIX)]


def test_delete_run_removes_only_our_artifacts(fmnist_dataset):
    ds, _ = fmnist_dataset
    ds.set_values("my_notes", ["keep"] * len(ds))
    ds.set_values("vc_mine", ["also keep: not created by us"] * len(ds))
    vc.compute_embeddings(ds.limit(10), model="demo")
    removed = vc.delete_run(ds)
    assert "vc_mine" not in removed["fields"]
    assert ds.has_sample_field("my_notes") and ds.has_sample_field("vc_mine")
    assert removed["tables"] and not [k for k in ds.list_runs() if k.startswith("vc_")]


HOSTILE = ["x' OR '1'='1", "'; DROP TABLE vectors; --", "label\"); db.dropDatabase(); (\"",
           "ünïcödé ☃ 猫", "a" * 10000, "$where", "../../etc/passwd", "id IN ('x')"]


def test_hostile_strings_are_data_not_code(fmnist_dataset):
    import fiftyone as fo

    ds, _ = fmnist_dataset
    for s, hostile in zip(ds.limit(len(HOSTILE)), HOSTILE):
        s.ground_truth = fo.Classification(label=hostile)
        s.tags = [hostile[:200]]
        s.save()
    vc.compute_embeddings(ds, model="demo")
    for hostile in HOSTILE:
        assert len(vc.find_similar(ds, text=hostile, k=5)) == 5
    summary = vc.analyze(ds, label_field="ground_truth", analyses=["mislabels", "uniqueness"])
    assert summary["analysed"] == len(ds)
    suggested = set(ds.values("vc_suggested_label"))
    assert suggested <= set(ds.distinct("ground_truth.label"))
    assert vcs.VectorStore.for_dataset(ds, "demo").count() == len(ds)
    assert len(ds.match_tags(HOSTILE[1])) == 1
