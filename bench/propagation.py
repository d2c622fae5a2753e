"""Label propagation (``core/propagation.py``) against scikit-learn's ``LabelSpreading`` (knn
kernel, 10 neighbours) and the nearest labelled example (1-NN, cosine), on the same vectors
and the same examples: EfficientNet-Lite0 vectors and the demo CLIP model's, on a
Fashion-MNIST set and a Tux Paint stamps set built with a random seed. For each set, model
and number of examples per class (5 and 20; at most half of a class, the stamps' classes being
small), three random draws of the examples; accuracy on every other item (full coverage), and
the precision and coverage of our items with confidence ≥ 0.9. Planted foreign images (no
true class) are left out.

    python bench/propagation.py --seed 7
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
for p in (str(REPO), str(BENCH)):
    if p not in sys.path:
        sys.path.insert(0, p)


def demo_vectors(paths, batch=64):
    from PIL import Image

    from visual_curation.core.models import load_model

    m = load_model("demo")
    out = []
    for i in range(0, len(paths), batch):
        ims = [m.prepare(Image.open(p).convert("RGB")) for p in paths[i:i + batch]]
        out.append(m.embed_tensors(m.collate(ims)))
    return np.concatenate(out)


def draw(y, per, rng):
    """``per`` random examples of each class (at most half of it)."""
    rows = []
    for c in np.unique(y):
        mine = np.flatnonzero(y == c)
        rows += rng.choice(mine, max(1, min(per, len(mine) // 2)), replace=False).tolist()
    return np.array(sorted(rows))


def compare(X, y, rows, seed):
    from sklearn.semi_supervised import LabelSpreading

    from visual_curation.core.knn import normalize
    from visual_curation.core.propagation import propagate

    unl = np.ones(len(y), bool)
    unl[rows] = False
    labels = [y[i] if not unl[i] else None for i in range(len(y))]
    t0 = time.time()
    classes, pred, conf, _ = propagate(X, labels, seed=seed)
    t_ours = time.time() - t0
    ours = np.array(classes)[pred]
    Xn = normalize(X)
    nn = y[rows][(Xn[unl] @ Xn[rows].T).argmax(axis=1)]
    cid = {c: i for i, c in enumerate(classes)}
    target = np.array([cid[v] if v is not None else -1 for v in labels])
    t0 = time.time()
    ls = LabelSpreading(kernel="knn", n_neighbors=10, max_iter=100).fit(Xn, target)
    t_ls = time.time() - t0
    ok = ours[unl] == y[unl]
    hi = conf[unl] >= 0.9
    return dict(ours=ok.mean(), nn=(nn == y[unl]).mean(),
                ls=(np.array(classes)[ls.transduction_][unl] == y[unl]).mean(),
                prec=ok[hi].mean() if hi.any() else float("nan"), cover=hi.mean(),
                t_ours=t_ours, t_ls=t_ls)


def run(seed, n_fmnist=5000, draws=3):
    from bench.effnet import embed_files
    from bench.metrics import load_truth
    from bench.quality import build

    root = Path("/tmp/vc-bench")
    rows = []
    for source, n in (("fmnist", n_fmnist), ("stamps", 5000)):
        folder = build(root, source, n, seed)
        truth = load_truth(folder)
        names = [k for k in sorted(truth) if truth[k]["true"] is not None]
        paths = [str(folder / "data" / k) for k in names]
        y = np.array([truth[k]["true"] for k in names])
        for model, X in (("EfficientNet-Lite0", embed_files(paths)),
                         ("demo CLIP", demo_vectors(paths))):
            for per in (5, 20):
                rs = [compare(X, y, draw(y, per, np.random.default_rng(seed * 100 + d)), d)
                      for d in range(draws)]
                rows.append(dict(source=source, n=len(y), classes=len(set(y)), model=model,
                                 per=per, **{k: float(np.nanmean([r[k] for r in rs]))
                                             for k in rs[0]}))
    return dict(seed=seed, rows=rows)


def table(r):
    out = ["| set | vectors | examples / class | ours | LabelSpreading | 1-NN | ours − best "
           "peer | precision at confidence ≥ 0.9 | share ≥ 0.9 | time ours / LabelSpreading |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for x in r["rows"]:
        gap = x["ours"] - max(x["ls"], x["nn"])
        out.append(f"| {x['source']} ({x['n']:,} images, {x['classes']} classes) | {x['model']} "
                   f"| {x['per']} | **{x['ours']:.3f}** | {x['ls']:.3f} | {x['nn']:.3f} | "
                   f"{100 * gap:+.1f} pts | {x['prec']:.3f} | {x['cover']:.2f} | "
                   f"{x['t_ours']:.1f} s / {x['t_ls']:.1f} s |")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=int(time.time()) % 1000)
    ap.add_argument("--n", type=int, default=5000)
    a = ap.parse_args()
    r = run(a.seed, a.n)
    print(f"seed {r['seed']}\n" + table(r))


if __name__ == "__main__":
    main()
