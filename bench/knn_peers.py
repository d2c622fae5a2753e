"""The kNN graph every vector analysis starts from: ``core/knn.py``'s IVF graph against faiss
(``IndexIVFFlat``, inner product) with the same cells and probes, on the scale bench's
synthetic vectors (``scale.synth_blocks``). Recall@10 against exact neighbours of 1,000
random rows.

    python bench/knn_peers.py --n 200000
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

K = 32          # what the analyses ask for (AnalysisInput.MIN_K)


def vectors(n, seed=0):
    from scale import synth_blocks

    return np.concatenate([b[1] for b in synth_blocks(n, seed=seed)]).astype(np.float32)


def exact_rows(X, rows, k=10):
    from visual_curation.core import knn as vknn

    ind, _ = vknn.knn_query(X[rows], X, k, exclude=rows)
    return ind


def recall(ind, truth):
    return float(np.mean([len(set(a[:10]) & set(b)) / 10 for a, b in zip(ind, truth)]))


def ours(X):
    from visual_curation.core import knn as vknn

    t = time.perf_counter()
    ind, _, info = vknn.ivf_knn(X, K)
    return ind, time.perf_counter() - t, info


def faiss_ivf(X, n_lists, n_probe, seed=0):
    import faiss

    t = time.perf_counter()
    d = X.shape[1]
    quant = faiss.IndexFlatIP(d)
    index = faiss.IndexIVFFlat(quant, d, n_lists, faiss.METRIC_INNER_PRODUCT)
    rng = np.random.default_rng(seed)
    m = int(min(len(X), max(40 * n_lists, 20000)))
    index.train(X[np.sort(rng.choice(len(X), m, replace=False))])
    index.add(X)
    index.nprobe = n_probe
    _, ind = index.search(X, K + 1)
    # drop each row itself (it is normally its own first hit)
    out = np.empty((len(X), K), np.int64)
    for s in range(0, len(X), 65536):
        blk = ind[s:s + 65536]
        rows = np.arange(s, s + len(blk))[:, None]
        keep = blk != rows
        first = np.argsort(~keep, axis=1, kind="stable")[:, :K]
        out[s:s + len(blk)] = np.take_along_axis(blk, first, axis=1)
    return out, time.perf_counter() - t


def run(n, seed=0):
    X = vectors(n, seed)
    rows = np.random.default_rng(1).choice(n, 1000, replace=False)
    truth = exact_rows(X, rows)
    a, t_ours, info = ours(X)
    b, t_faiss = faiss_ivf(X, info["n_lists"], info["n_probe"])
    return dict(n=n, d=X.shape[1], k=K, n_lists=info["n_lists"], n_probe=info["n_probe"],
                ours_s=round(t_ours, 1), ours_recall10=recall(a[rows], truth),
                faiss_s=round(t_faiss, 1), faiss_recall10=recall(b[rows], truth))


def table(rs):
    out = ["| vectors | cells / probes | core/knn.py IVF (s) | recall@10 | faiss IVFFlat (s) | "
           "recall@10 | faiss / ours time |", "|---|---|---|---|---|---|---|"]
    for r in rs:
        out.append(f"| {r['n']:,} x {r['d']} | {r['n_lists']} / {r['n_probe']} | {r['ours_s']} | "
                   f"{r['ours_recall10']:.3f} | {r['faiss_s']} | {r['faiss_recall10']:.3f} | "
                   f"{r['faiss_s'] / r['ours_s']:.2f} |")
    return "\n".join(out)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, nargs="+", default=[200_000])
    a = ap.parse_args()
    rs = [run(n) for n in a.n]
    print(json.dumps(rs, indent=1))
    print(table(rs))
