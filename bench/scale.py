#!/usr/bin/env python3
"""Scale benchmarks: a million synthetic vectors on one machine, and 70k real ones vs the Brain.

``million``: ``--n`` (default 1,000,000) synthetic 512-d unit vectors with structure like real
embeddings (20 classes x 50 modes, each mode a 24-d low-rank spread plus isotropic noise), 2 %
planted near-copies and 3 % label noise, written to a LanceDB table (VectorStore, the same
class the plugin uses) and read back streamed as float16. Then every vector analysis
(clusters, duplicates, uniqueness, mislabels, outliers; quality needs pixels) runs in a child
process whose RSS is sampled every 0.2 s. Reported: time per step, peak RSS, kNN-graph
recall@10 (IVF on a 50k subsample vs exact on the same subsample; and the 1M graph on 1,000
random rows vs exact over all rows), planted-copy recall, and find-similar latency through
LanceDB's IVF-PQ index with its recall@10 vs exact.

``fmnist70k``: all of Fashion-MNIST (planted_sets n=70000) with EfficientNet-Lite0 vectors:
``visual_curation.analyze`` (all six analyses, MongoDB writes included) against FiftyOne
Brain's compute_uniqueness + compute_near_duplicates + compute_similarity(lancedb) on the same
vectors, same run; plus quality on the planted truth and an incremental +1 % re-run.

    python bench/scale.py million [--n 1000000]
    python bench/scale.py fmnist70k [--n 70000]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
WORK = Path(os.environ.get("VC_BENCH_DIR", "/tmp/vc-bench"))


# ----------------------------------------------------------------------------- synthetic data
def synth_blocks(n, d=512, classes=20, modes=50, latent=24, dup_frac=0.02, noise_frac=0.03,
                 seed=0, block=50_000):
    """Yields ``(start, vectors, labels, true_labels)`` blocks; the last yield also carries the
    planted copy pairs. Copies are made inside each block (so blocks stream)."""
    rng = np.random.default_rng(seed)
    cc = rng.standard_normal((classes, d)).astype(np.float32)
    mc = (cc[:, None, :] + 0.8 * rng.standard_normal((classes, modes, d))).reshape(-1, d)
    mc = mc.astype(np.float32)
    basis = (0.35 * rng.standard_normal((classes * modes, latent, d))).astype(np.float32)
    pairs = []
    for b0 in range(0, n, block):
        m = min(block, n - b0)
        s = rng.integers(0, classes * modes, m)
        z = rng.standard_normal((m, latent)).astype(np.float32)
        x = mc[s] + np.einsum("ml,mld->md", z, basis[s])
        x += 0.25 * rng.standard_normal((m, d)).astype(np.float32)
        true = s // modes
        nd = int(round(dup_frac * m))
        src = rng.choice(m, nd, replace=False)
        dst = rng.choice(np.setdiff1d(np.arange(m), src), nd, replace=False)
        x[dst] = x[src] + 0.02 * np.linalg.norm(x[src], axis=1, keepdims=True) * \
            rng.standard_normal((nd, d)).astype(np.float32) / np.sqrt(d)
        true[dst] = true[src]
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        given = true.copy()
        flip = rng.random(m) < noise_frac
        given[flip] = (true[flip] + rng.integers(1, classes, flip.sum())) % classes
        pairs.append(np.stack([src + b0, dst + b0], 1))
        yield b0, x, given, true, (np.concatenate(pairs) if b0 + m >= n else None)


def build_million(n, uri, seed=0, index=True):
    """Writes the synthetic table (once per n/seed), with LanceDB's IVF-PQ index unless
    ``index`` is false (the growth sizes: the analyses do not use it); returns (store, meta)."""
    from visual_curation.core.store import VectorStore

    name = f"vc_bench_synthetic_{n}_s{seed}"
    meta_path = WORK / f"{name}.npz"
    store = VectorStore(name, uri=uri)
    if store.exists() and meta_path.exists() and store.count() == n:
        m = np.load(meta_path)
        return store, dict(given=m["given"], true=m["true"], pairs=m["pairs"],
                           write_s=float(m["write_s"]),
                           index_s=float(m["index_s"]) if m["index_s"] >= 0 else None,
                           reused=True)
    store.drop()
    store.create(512)
    given = np.empty(n, np.int64)
    true = np.empty(n, np.int64)
    pairs = None
    t = time.perf_counter()
    for b0, x, g, tr, p in synth_blocks(n, seed=seed):
        given[b0:b0 + len(x)], true[b0:b0 + len(x)] = g, tr
        ids = [f"s{i:07d}" for i in range(b0, b0 + len(x))]
        store.append({"id": ids, "vector": x})      # new ids: plain appends
        pairs = p if p is not None else pairs
    write_s = time.perf_counter() - t
    t = time.perf_counter()
    if index:
        store.ensure_index(min_rows=0)
    index_s = time.perf_counter() - t if index else -1.0      # -1: not indexed
    WORK.mkdir(parents=True, exist_ok=True)
    np.savez(meta_path, given=given, true=true, pairs=pairs, write_s=write_s, index_s=index_s)
    return store, dict(given=given, true=true, pairs=pairs, write_s=write_s,
                       index_s=index_s if index_s >= 0 else None,
                       reused=False)


# ----------------------------------------------------------------------------- RSS sampling
class RssSampler:
    """Samples this process's resident memory every ``dt`` seconds; marks named steps.
    ``peak_anon``: the peak of the anonymous part (RSS less file-backed pages, which the
    system can drop and read again: memory-mapped vectors); ``faults``: the major page faults
    (pages read back from disk) of each step."""

    def __init__(self, dt=0.2):
        import psutil

        self.p = psutil.Process()
        self.dt = dt
        self.peak = 0
        self.peak_anon = 0
        self.step = "start"
        self.by_step = {}
        self.faults = {}
        self._f0 = self._majflt()
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.sample()
            time.sleep(self.dt)

    def sample(self):
        mi = self.p.memory_info()
        r = mi.rss
        self.peak = max(self.peak, r)
        self.peak_anon = max(self.peak_anon, r - getattr(mi, "shared", 0))
        self.by_step[self.step] = max(self.by_step.get(self.step, 0), r)

    @staticmethod
    def _majflt():
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_majflt

    def _close_step(self):
        f = self._majflt()
        self.faults[self.step] = self.faults.get(self.step, 0) + f - self._f0
        self._f0 = f

    def mark(self, step):
        self.sample()
        self._close_step()
        self.step = step
        self.sample()

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *a):
        self._stop.set()
        self._t.join()
        self.sample()
        self._close_step()


def worker_million(n, uri, out, mmap=False):
    """Child process: read vectors from LanceDB, run the analyses, measure everything.
    ``mmap``: the vectors are read into a memory-mapped file (as ``analyze`` does when they
    exceed a share of the machine's memory), in generation order."""
    from visual_curation.core import knn as vknn
    from visual_curation.core.analyzers import REGISTRY
    from visual_curation.core.analyzers.base import AnalysisInput
    from visual_curation.core.store import VectorStore

    meta = np.load(WORK / f"vc_bench_synthetic_{n}_s0.npz")
    res = dict(n=n, steps={}, rss_gb={})
    with RssSampler() as rs:
        rs.mark("read")
        t = time.perf_counter()
        store = VectorStore(f"vc_bench_synthetic_{n}_s0", uri=uri)
        if mmap:                                   # placed in generation order as read
            ids, vecs, _ = store.vectors([f"s{i:07d}" for i in range(n)], dtype=np.float16,
                                         mmap_dir=str(WORK / "mmap"))
        else:
            ids, vecs, _ = store.vectors(dtype=np.float16)
            order = np.argsort(np.asarray(ids))    # rows back in generation order
            if not np.array_equal(order, np.arange(len(order))):
                vecs = vecs[order]
                ids = [ids[j] for j in order]
        res["mmap"] = bool(mmap)
        res["steps"]["read vectors from LanceDB (float16)"] = time.perf_counter() - t
        labels = [str(c) for c in meta["given"]]
        inp = AnalysisInput(ids=ids, vectors=vecs, labels=labels)
        rs.mark("knn graph")
        t = time.perf_counter()
        inp.knn(inp.MIN_K)
        res["steps"]["kNN graph (IVF, k=32)"] = time.perf_counter() - t
        res["knn_info"] = inp.knn_info()
        fields = {}
        for name in ("clusters", "duplicates", "uniqueness", "mislabels", "outliers"):
            rs.mark(name)
            t = time.perf_counter()
            r = REGISTRY[name].run(inp)
            res["steps"][name] = time.perf_counter() - t
            fields.update(r.fields)
        rs.mark("done")
        res["analysis_s"] = sum(v for k, v in res["steps"].items() if not k.startswith("read"))
        # graph recall over all rows: 1,000 random rows vs exact
        rng = np.random.default_rng(1)
        q = np.sort(rng.choice(n, 1000, replace=False))
        ex, _ = vknn.knn_query(vecs[q], vecs, 10, exclude=q)
        ind, _ = inp.knn(10)
        res["graph_recall10_1000_rows"] = float(np.mean(
            [len(set(a) & set(b)) / 10 for a, b in zip(ex, ind[q])]))
        pairs = meta["pairs"]
        grp = np.array([-1 if g is None else hash(g) for g in fields["vc_dup_group"]])
        res["planted_copy_recall"] = float(np.mean(
            (grp[pairs[:, 0]] == grp[pairs[:, 1]]) & (grp[pairs[:, 0]] != -1)))
        res["dup_groups"] = int(len({g for g in fields["vc_dup_group"] if g is not None}))
        mis = np.array(fields["vc_mislabel"], float) >= 0.5
        truth = meta["given"] != meta["true"]
        res["mislabel_precision"] = float((mis & truth).sum() / max(mis.sum(), 1))
        res["mislabel_recall"] = float((mis & truth).sum() / max(truth.sum(), 1))
    res["peak_rss_gb"] = rs.peak / 2**30
    res["peak_anon_rss_gb"] = rs.peak_anon / 2**30
    res["rss_gb"] = {k: v / 2**30 for k, v in rs.by_step.items()}
    res["major_faults"] = rs.faults
    Path(out).write_text(json.dumps(res, indent=1))


def subsample_recall(vectors, m=50_000, seed=0):
    """IVF graph on a random ``m``-row subsample vs exact kNN of the same rows."""
    from visual_curation.core import knn as vknn

    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(vectors), min(m, len(vectors)), replace=False))
    v = np.asarray(vectors[rows], np.float32)
    t = time.perf_counter()
    ia, _, info = vknn.ivf_knn(v, 10)
    t_ivf = time.perf_counter() - t
    t = time.perf_counter()
    ie, _ = vknn.knn(v, 10)
    t_ex = time.perf_counter() - t
    rec = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ia, ie)]))
    return dict(rows=len(rows), recall10=rec, ivf_s=t_ivf, exact_s=t_ex, **info)


def search_latency(store, vectors, n_queries=200, k=10, seed=2):
    """p50/p95 latency of VectorStore.search (LanceDB IVF-PQ) and recall@10 vs exact."""
    from visual_curation.core import knn as vknn

    rng = np.random.default_rng(seed)
    q = rng.choice(len(vectors), n_queries, replace=False)
    store.search(np.asarray(vectors[q[0]], np.float32), k=k)     # open the index
    lat, hits = [], []
    ex, _ = vknn.knn_query(np.asarray(vectors[q], np.float32), vectors, k)
    for j, i in enumerate(q):
        t = time.perf_counter()
        r = store.search(np.asarray(vectors[i], np.float32), k=k)
        lat.append(time.perf_counter() - t)
        got = {int(x[0][1:]) for x in r}
        hits.append(len(got & set(ex[j].tolist())) / k)
    lat = np.array(lat) * 1000
    return dict(queries=n_queries, p50_ms=float(np.percentile(lat, 50)),
                p95_ms=float(np.percentile(lat, 95)), recall10=float(np.mean(hits)),
                indexed=store.has_index())


def run_million(n, uri=None):
    uri = uri or str(WORK / "lancedb-scale")
    t = time.perf_counter()
    store, meta = build_million(n, uri)
    build_s = time.perf_counter() - t
    out = WORK / f"scale-million-{n}.json"
    env = dict(os.environ)
    t = time.perf_counter()
    subprocess.run([sys.executable, __file__, "_worker_million", "--n", str(n), "--uri", uri,
                    "--out", str(out)], check=True, env=env)
    wall = time.perf_counter() - t
    res = json.loads(out.read_text())
    res["child_wall_s"] = wall
    res["build"] = dict(seconds=build_s, write_s=meta["write_s"], index_s=meta["index_s"],
                        reused=meta["reused"])
    _, vecs, _ = store.vectors(dtype=np.float16)
    res["subsample"] = subsample_recall(vecs)
    res["search"] = search_latency(store, vecs)
    return res


def million_table(r):
    steps = "\n".join(f"| {k} | {v:.1f} | {r['rss_gb'].get(_step_key(k), float('nan')):.2f} |"
                      for k, v in r["steps"].items())
    b = r["build"]
    built = (f"written in {b['write_s']:.0f} s, IVF-PQ index built in {b['index_s']:.0f} s"
             + (" - measured when this command first built the table, reused since"
                if b["reused"] else ""))
    s, q = r["subsample"], r["search"]
    return (
        f"{r['n']:,} synthetic 512-d vectors in LanceDB ({built}). The analyses run in a child "
        f"process, vectors read streamed as float16; RSS sampled every 0.2 s.\n\n"
        f"| step | s | peak RSS during step (GiB) |\n|---|---|---|\n{steps}\n"
        f"| **all analyses (excluding the read)** | **{r['analysis_s']:.0f}** | "
        f"**{r['peak_rss_gb']:.2f} peak** |\n\n"
        f"Goal: all analyses < 600 s on 2 cores, peak RSS < 4 GiB.\n\n"
        f"kNN graph: {r['knn_info']['method']} (k-means cells n_lists="
        f"{r['knn_info'].get('n_lists')}, n_probe={r['knn_info'].get('n_probe')}, blocked float32 "
        f"products). Recall@10 vs exact: {s['recall10']:.3f} on a {s['rows']:,}-row subsample "
        f"(IVF {s['ivf_s']:.1f} s vs exact {s['exact_s']:.1f} s on it); "
        f"{r['graph_recall10_1000_rows']:.3f} for 1,000 random rows of the full graph. "
        f"Goal ≥ 0.95.\n\n"
        f"Planted near-copies found in one duplicate group: {r['planted_copy_recall']:.3f}; "
        f"mislabels (3 % planted) P {r['mislabel_precision']:.2f} / R "
        f"{r['mislabel_recall']:.2f}.\n\n"
        f"Find-similar (VectorStore.search: LanceDB IVF-PQ, nprobes 32, refine x10), "
        f"{q['queries']} queries: p50 {q['p50_ms']:.1f} ms, p95 {q['p95_ms']:.1f} ms, recall@10 "
        f"vs exact {q['recall10']:.3f}. Goal p50 < 50 ms.\n")


def run_fmnist70k(n=70_000):
    """analyze() (all six analyses, MongoDB writes included) vs the Brain's uniqueness +
    near-duplicates + similarity(lancedb) on the same EffNet vectors, same run."""
    import fiftyone as fo

    import visual_curation as vc
    from bench import metrics, peers, quality

    fo.config.show_progress_bars = False
    # all 70,000 Fashion-MNIST images; 0.5 % foreign outliers (the stamps have ~600 images)
    d = quality.build(WORK, "fmnist", n, 0, outliers=0.005)
    t = time.perf_counter()
    inp, names, truth = quality.load_input(d)
    vec_s = time.perf_counter() - t
    res = dict(n_images=len(names), vectors_s=vec_s, dim=int(inp.vectors.shape[1]))
    # the kNN graph's recall on these real vectors: IVF (what runs above 20k rows) vs exact,
    # on a 20k subsample (exact on all rows would take longer than everything else here)
    res["subsample"] = subsample_recall(inp.vectors, m=20_000)
    # the Brain, on its own copy of the dataset (load time excluded from its figures)
    brain = peers.run_brain(d, inp.vectors, thresholds=(0.05,))
    res["brain"] = {k: v for k, v in brain.items() if k.endswith("seconds")}
    name = "vc-bench-fmnist70k"
    if fo.dataset_exists(name):
        fo.delete_dataset(name)
    ds = fo.Dataset.from_dir(dataset_dir=str(d), name=name, label_field="ground_truth",
                             dataset_type=fo.types.FiftyOneImageClassificationDataset)
    try:
        row = {nm: i for i, nm in enumerate(names)}
        files = [Path(p).name for p in ds.values("filepath")]
        emb = inp.vectors[[row[f] for f in files]]
        t = time.perf_counter()
        vc.import_embeddings(ds, embeddings=emb, name="effnet")
        res["import_s"] = time.perf_counter() - t
        t = time.perf_counter()
        summary = vc.analyze(ds, label_field="ground_truth", progress=False)
        res["analyze_s"] = time.perf_counter() - t
        res["analyze_timings"] = summary.get("timings")
        flds = ["vc_dup_group", "vc_duplicate", "vc_mislabel", "vc_outlier", "vc_blur",
                "vc_dark", "vc_bright", "vc_uniqueness"] + [f"vc_cluster_{l}" for l in range(1, 6)]
        vals = dict(zip(flds, ds.values(flds)))
        pos = {f: j for j, f in enumerate(files)}
        fields = {k: [v[pos[nm]] for nm in names] for k, v in vals.items()}
        res["metrics"] = metrics.score_all(fields, names, truth)
    finally:
        vc.delete_run(ds)
        ds.delete()
    return res


def fmnist70k_table(r):
    b = r["brain"]
    brain_all = b["uniq_dups_sim_seconds"]
    m = r["metrics"]
    s = r["subsample"]
    tim = r.get("analyze_timings") or {}
    per = ", ".join(f"{k} {v:.0f} s" for k, v in tim.items()) if isinstance(tim, dict) else ""
    return (
        f"planted_sets fmnist n=70000 seed 0 --outliers 0.005 ({r['n_images']:,} images), EfficientNet-Lite0 "
        f"vectors ({r['dim']}-d, computed once and given to both). Brain: its own "
        f"dataset copy, `compute_uniqueness` + `compute_near_duplicates` + "
        f"`compute_similarity(backend=\"lancedb\")`. Visual Curation: `import_embeddings("
        f"embeddings=…)` then `analyze(label_field=…)`: all six analyses (quality and the "
        f"duplicate check read the pixels) and the MongoDB writes.\n\n"
        f"| | s |\n|---|---|\n"
        f"| Brain uniqueness + near-dups + similarity(lancedb) | {brain_all:.0f} |\n"
        f"| Brain uniqueness alone / near-dups alone | {b['uniqueness_seconds']:.0f} / "
        f"{b['near_duplicates_seconds']:.0f} |\n"
        f"| Visual Curation import of the vectors into LanceDB | {r['import_s']:.0f} |\n"
        f"| **Visual Curation analyze, all six analyses** | **{r['analyze_s']:.0f}** |\n"
        f"| ratio (analyze / Brain's three) | **{r['analyze_s'] / brain_all:.2f}x** "
        f"(goal ≤ 0.5x) |\n\n"
        f"Per analysis: {per}.\n\n"
        f"kNN graph on these real vectors: IVF recall@10 {s['recall10']:.3f} vs exact on a "
        f"{s['rows']:,}-row subsample (n_lists {s['n_lists']}, n_probe {s['n_probe']}).\n\n"
        f"Quality at this size (planted truth): near-dup F1 {m['dup_f1']:.3f}, mislabel P "
        f"{m['mislabel_precision']:.3f} / R {m['mislabel_recall']:.3f}, outlier AUROC "
        f"{m['outlier_auroc']:.3f}, blur/dark/bright F1 {m['blur_f1']:.2f} / {m['dark_f1']:.2f}"
        f" / {m['bright_f1']:.2f}, cluster NMI {m['cluster_nmi']:.3f}, nesting "
        f"{m['nesting']:.3f}.\n")


INC_FIELDS = [f"vc_cluster_{k}" for k in range(1, 6)] + [
    "vc_dup_group", "vc_duplicate", "vc_uniqueness", "vc_mislabel", "vc_suggested_label",
    "vc_outlier", "vc_blur", "vc_dark", "vc_bright", "vc_issues"]


def run_incremental70k(n=70_000, share=0.01, seed=0):
    """A full analyze() on 99 % of the 70k set, then the held-out 1 % added and analyze()
    again (the incremental path), then a from-scratch run on everything for comparison."""
    import fiftyone as fo

    import visual_curation as vc
    from bench import metrics, quality

    fo.config.show_progress_bars = False
    d = quality.build(WORK, "fmnist", n, 0, outliers=0.005)
    inp, names, truth = quality.load_input(d)
    row = {nm: i for i, nm in enumerate(names)}
    name = "vc-bench-incremental70k"
    if fo.dataset_exists(name):
        fo.delete_dataset(name)
    ds = fo.Dataset.from_dir(dataset_dir=str(d), name=name, label_field="ground_truth",
                             dataset_type=fo.types.FiftyOneImageClassificationDataset)
    res = dict(n_images=len(ds), share=share)
    try:
        rng = np.random.default_rng(seed)
        held = list(rng.choice(ds.values("id"), int(round(share * len(ds))), replace=False))
        saved = [(s.filepath, s.ground_truth.label) for s in ds.select(held)]
        ds.delete_samples(held)

        def vectors():
            return inp.vectors[[row[Path(p).name] for p in ds.values("filepath")]]

        def snapshot():
            vals = ds.values(["id", "filepath"] + INC_FIELDS)
            return {Path(fp).name: dict(zip(INC_FIELDS, r)) for _, fp, *r in zip(*vals)}

        vc.import_embeddings(ds, embeddings=vectors(), name="effnet")
        t = time.perf_counter()
        vc.analyze(ds, label_field="ground_truth", progress=False)
        res["full_s"] = time.perf_counter() - t
        before = snapshot()
        ds.add_samples([fo.Sample(filepath=fp, ground_truth=fo.Classification(label=lab))
                        for fp, lab in saved])
        t = time.perf_counter()
        imp = vc.import_embeddings(ds, embeddings=vectors(), name="effnet")
        res["import_s"], res["imported"] = time.perf_counter() - t, imp.embedded
        t = time.perf_counter()
        s = vc.analyze(ds, label_field="ground_truth", progress=False)
        res["incremental_s"] = time.perf_counter() - t
        res["incremental"] = s.get("incremental")
        after = snapshot()
        new = [nm for nm in after if nm not in before]
        changed = [nm for nm in before if before[nm] != after[nm]]
        res["added"] = len(new)
        res["earlier_changed"] = len(changed)
        res["earlier_changed_outside_dup_fields"] = sum(
            any(before[nm][f] != after[nm][f] for f in INC_FIELDS
                if f not in ("vc_dup_group", "vc_duplicate", "vc_issues")) for nm in changed)
        t = time.perf_counter()
        vc.analyze(ds, label_field="ground_truth", progress=False, force=True)
        res["scratch_s"] = time.perf_counter() - t
        scratch = snapshot()
        # the new items: incremental vs from-scratch, issue by issue, and on the planted truth
        agree = {}
        for issue in ("duplicate", "mislabel", "outlier", "blur", "dark", "bright"):
            agree[issue] = float(np.mean([(issue in (after[nm]["vc_issues"] or []))
                                          == (issue in (scratch[nm]["vc_issues"] or []))
                                          for nm in new]))
        res["agreement"] = agree

        def fields_of(snap):
            return {f: [snap[nm][f] for nm in names] for f in INC_FIELDS}

        res["metrics_incremental"] = metrics.score_all(fields_of(after), names, truth)
        res["metrics_scratch"] = metrics.score_all(fields_of(scratch), names, truth)
    finally:
        vc.delete_run(ds)
        ds.delete()
    return res


def incremental_table(r):
    inc = r.get("incremental") or {}
    mi, ms = r["metrics_incremental"], r["metrics_scratch"]
    rows = [("dup F1", "dup_f1"), ("mislabel P", "mislabel_precision"),
            ("mislabel R", "mislabel_recall"), ("outlier AUROC", "outlier_auroc"),
            ("blur F1", "blur_f1"), ("dark F1", "dark_f1"), ("bright F1", "bright_f1")]
    return (
        f"planted_sets fmnist n=70000 seed 0 --outliers 0.005 ({r['n_images']:,} images), "
        f"EfficientNet-Lite0 vectors. {r['added']:,} samples ({r['share']:.0%}, seeded random) "
        f"held out; `analyze()` on the rest (full run); the held-out samples added, their "
        f"vectors imported (`import_embeddings` rewrote {r['imported']:,} rows), `analyze()` "
        f"again: the incremental path. Then `analyze(force=True)` from scratch on everything.\n\n"
        f"| | s |\n|---|---|\n"
        f"| full run on {r['n_images'] - r['added']:,} samples | {r['full_s']:.1f} |\n"
        f"| **incremental run, {r['added']:,} samples added** | **{r['incremental_s']:.1f}** "
        f"({r['incremental_s'] / r['full_s']:.1%} of the full run; goal < 5%) |\n"
        f"| from-scratch run on all {r['n_images']:,} | {r['scratch_s']:.1f} |\n\n"
        f"Incremental run by step (s): "
        + ", ".join(f"{k} {v:.1f}" for k, v in (inc.get("timings") or {}).items()) + ".\n\n"
        + (lambda d: f"Duplicate check: {d.get('decoded', 0):,} images decoded (the new ones "
           f"in candidate pairs), {d.get('from_store', 0):,} earlier partners compared through "
           f"their stored thumbnails, of which {d.get('decoded_after_all', 0):,} were decoded "
           f"after all (an approximate crop came close to matching).\n\n" if d else "")(
            inc.get("duplicates_images"))
        + f"Earlier samples whose fields changed: {r['earlier_changed']} (all in duplicate "
        f"groups a new sample joined; other fields changed: "
        f"{r['earlier_changed_outside_dup_fields']}). Every other earlier sample keeps "
        f"exactly the values of the full run.\n\n"
        f"New samples, incremental vs from-scratch issue flags agree: "
        + ", ".join(f"{k} {v:.1%}" for k, v in r["agreement"].items())
        + ".\n\nOn the planted truth of all samples (incremental / from scratch): "
        + ", ".join(f"{lbl} {mi[k]:.3f} / {ms[k]:.3f}" for lbl, k in rows) + ".\n")


def _step_key(k):
    if k.startswith("read"):
        return "read"
    if k.startswith("kNN"):
        return "knn graph"
    return k


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("what", choices=["million", "fmnist70k", "incremental70k",
                                     "_worker_million"])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--uri")
    ap.add_argument("--out")
    ap.add_argument("--mmap", action="store_true")
    a = ap.parse_args(argv)
    if a.what == "_worker_million":
        worker_million(a.n, a.uri, a.out, mmap=a.mmap)
        return
    if a.what == "incremental70k":
        r = run_incremental70k(a.n if a.n != 1_000_000 else 70_000)
        print(json.dumps(r, indent=1, default=str))
        print(incremental_table(r))
        return
    if a.what == "fmnist70k":
        r = run_fmnist70k(a.n if a.n != 1_000_000 else 70_000)
        print(json.dumps(r, indent=1, default=str))
        print(fmnist70k_table(r))
        return
    r = run_million(a.n, a.uri)
    print(json.dumps(r, indent=1))
    print(million_table(r))


if __name__ == "__main__":
    main()
