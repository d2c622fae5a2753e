#!/usr/bin/env python3
"""Embedding map: ``compute_embedding_map`` end to end at 100k (vectors read from LanceDB, UMAP
or PCA, the Brain visualization run written to MongoDB), and the 1M sample-fit path (reduction
only, on vectors in memory: a million-sample MongoDB dataset is not built here).

Vectors: bench/scale.py's synthetic 512-d structure (20 classes x 50 modes). Quality: how often a
point's 10 nearest 2-D neighbours share its class, on 3,000 random points (chance ≈ 0.05), next
to the same figure in the 512-d space (the ceiling a map can keep).

    python bench/embedding_map.py [--n 100000] [--big 1000000]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("FIFTYONE_DATABASE_NAME", "visual-curation-bench")
sys.path.insert(0, str(Path(__file__).resolve().parent))


def _vectors(n, seed=0):
    from scale import synth_blocks

    vecs = np.empty((n, 512), np.float16)
    labels = np.empty(n, np.int64)
    for start, x, _, true, *_ in synth_blocks(n, seed=seed):
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
        vecs[start:start + len(x)] = x
        labels[start:start + len(x)] = true
    return vecs, labels


def agreement(points, labels, m=3000, k=10, seed=0):
    """Share of the k nearest neighbours (among all points) of m random points with their class."""
    rng = np.random.default_rng(seed)
    q = rng.choice(len(points), min(m, len(points)), replace=False)
    pts = np.asarray(points, np.float32)
    hits = 0
    for i in q:
        d = ((pts - pts[i]) ** 2).sum(axis=1)
        d[i] = np.inf
        nn = np.argpartition(d, k)[:k]
        hits += int((labels[nn] == labels[i]).sum())
    return hits / (len(q) * k)


def _agreement_hd(vecs, labels, m=3000, k=10, seed=0):
    from visual_curation.core.knn import knn_query

    rng = np.random.default_rng(seed)
    q = rng.choice(len(vecs), min(m, len(vecs)), replace=False)
    idx, _ = knn_query(np.asarray(vecs[q], np.float32), vecs, k + 1)
    idx = np.array([[j for j in row if j != i][:k] for row, i in zip(idx, q)])
    return float((labels[idx] == labels[q][:, None]).mean())


def run_sdk(n, seed=0):
    """End to end on an n-sample dataset: ``[{method, seconds, points, agreement}]``."""
    import fiftyone as fo

    import visual_curation as vc

    vecs, labels = _vectors(n, seed)
    name = f"vc-bench-map-{n}"
    if fo.dataset_exists(name):
        fo.delete_dataset(name)
    ds = fo.Dataset(name)
    ds.add_samples([fo.Sample(filepath=f"/nonexistent/{i}.jpg") for i in range(n)],
                   progress=False)
    vc.import_embeddings(ds, embeddings=vecs.astype(np.float32), name="synthetic")
    by_id = dict(zip(ds.values("id"), labels))
    rows = [dict(method="512-d space (ceiling)", seconds=None, points=n,
                 agreement=_agreement_hd(vecs, labels))]
    try:
        for method in ("umap", "pca"):
            t = time.time()
            m = vc.compute_embedding_map(ds, method=method, brain_key=f"vc_map_{method}")
            sec = time.time() - t
            res = ds.load_brain_results(m.brain_key)
            lab = np.array([by_id[i] for i in res.sample_ids])
            rows.append(dict(method=f"{method.upper()} (fit on {m.fitted_on:,})", seconds=sec,
                             points=m.points, agreement=agreement(res.points, lab)))
            print(rows[-1], flush=True)
    finally:
        vc.delete_run(ds)
        ds.delete()
    return rows


def run_reduce(n, seed=0):
    """The reduction alone (no dataset) on n vectors in memory."""
    from visual_curation.core.embedding_map import FIT_SAMPLE, _reduce, _Steps

    vecs, labels = _vectors(n, seed)
    rows = []
    for method in ("umap", "pca"):
        t = time.time()
        pts, fitted, used = _reduce(vecs, method, FIT_SAMPLE, 15, 0.1, seed,
                                    _Steps(False, ["read", "fit", "transform"]))
        sec = time.time() - t
        rows.append(dict(method=f"{used.upper()} (fit on {fitted:,})", seconds=sec, points=n,
                         agreement=agreement(pts, labels)))
        print(rows[-1], flush=True)
    return rows


def table(rows_by_size):
    out = ["| points | what is timed | method | seconds | 10-NN same class |", "|---|---|---|---|---|"]
    for (n, what), rows in rows_by_size.items():
        for r in rows:
            sec = "" if r["seconds"] is None else f"{r['seconds']:.1f}"
            out.append(f"| {n:,} | {what} | {r['method']} | {sec} | {r['agreement']:.3f} |")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--big", type=int, default=0)
    a = ap.parse_args()
    res = {(a.n, "end to end (SDK)"): run_sdk(a.n)}
    if a.big:
        res[(a.big, "reduction only")] = run_reduce(a.big)
    print(table(res))


if __name__ == "__main__":
    main()
