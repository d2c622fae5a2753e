#!/usr/bin/env python3
"""Quality benchmark of the analyzers on planted-truth data.

Builds the planted-truth sets with ``tools/planted_sets.py`` (cached in ``--root``), computes
EfficientNet-Lite0 vectors (bench/effnet.py, cached next to the data), runs every analyzer of
``REGISTRY`` at its defaults on one shared input per set, and prints the metrics table
(bench/metrics.py) and run times.

    python bench/quality.py                              # fmnist n=5000 + stamps, seed 0
    python bench/quality.py --sets fmnist:2000 --json out.json
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")

from bench import metrics  # noqa: E402
from bench.effnet import embed_files  # noqa: E402


def build(root: Path, source: str, n: int, seed: int, **kw) -> Path:
    """The planted-truth set (``tools/planted_sets.py``, built once per arguments); ``kw``:
    more :func:`~tools.planted_sets.build_set` options."""
    from tools.planted_sets import build_set

    extra = "".join(f"-{k}{'_'.join(map(str, v)) if isinstance(v, tuple) else v}"
                    for k, v in sorted(kw.items()))
    return build_set(root / f"{source}-n{n}-s{seed}{extra}", source=source, n=n, seed=seed, **kw)


def load_input(bench_dir: Path):
    """(AnalysisInput, file names, truth) for a planted-truth folder."""
    import hashlib

    from visual_curation.core.analyzers.base import AnalysisInput

    truth = metrics.load_truth(bench_dir)
    names = sorted(truth)
    paths = [str(bench_dir / "data" / n) for n in names]
    vecs = embed_files(paths)
    labels = [truth[n]["label"] for n in names]
    hashes = [hashlib.sha1(Path(p).read_bytes()).hexdigest() for p in paths]
    inp = AnalysisInput(ids=names, vectors=vecs, labels=labels, filepaths=paths,
                        content_hashes=hashes)
    return inp, names, truth


def run_all(inp, names=None, analyses=None):
    """Runs the analyzers on ``inp``; returns (fields, summaries, errors, seconds per analyzer)."""
    from visual_curation.core.analyzers import REGISTRY

    fields, summaries, errors, times = {}, {}, {}, {}
    inp.planned = tuple(n for n in REGISTRY if not analyses or n in analyses)
    for name, a in REGISTRY.items():
        if analyses and name not in analyses:
            continue
        t, c = time.perf_counter(), time.process_time()
        res = a.run(inp)
        times[name] = time.perf_counter() - t
        times[name + "_cpu"] = time.process_time() - c
        fields.update(res.fields)
        summaries[name] = res.summary
        errors[name] = res.errors
    return fields, summaries, errors, times


def demo_vectors(paths):
    """The offline demo CLIP's vectors of the files ``paths`` (rows L2-normalised)."""
    import numpy as np

    from visual_curation.core import images as vci
    from visual_curation.core.models import load_model

    lm = load_model("demo", None, "cpu")
    return np.concatenate([lm.embed_tensors(lm.collate(
        [lm.prepare(vci.load_image(p)[0]) for p in paths[i:i + 128]]))
        for i in range(0, len(paths), 128)])


def anomaly_vs_peers(vectors, names, truth) -> dict:
    """AUROC on the planted foreign images, without labels: our ``anomaly`` analysis against
    scikit-learn's LocalOutlierFactor (n_neighbors=20) and IsolationForest (seed 0), all on
    the same vectors."""
    import numpy as np
    from sklearn.ensemble import IsolationForest
    from sklearn.neighbors import LocalOutlierFactor

    from visual_curation.core.analyzers import REGISTRY
    from visual_curation.core.analyzers.base import AnalysisInput

    pos = [bool(truth[n].get("outlier")) for n in names]
    defect = np.array([bool(truth[n].get("defect")) for n in names])
    conf = np.array(REGISTRY["anomaly"].run(
        AnalysisInput(ids=list(names), vectors=vectors)).fields["vc_anomaly"])
    lof = -LocalOutlierFactor(n_neighbors=20).fit(vectors).negative_outlier_factor_
    iso = -IsolationForest(random_state=0).fit(vectors).score_samples(vectors)
    flag = conf >= 0.5
    return dict(ours=metrics.auroc(conf, pos), lof=metrics.auroc(lof, pos),
                iforest=metrics.auroc(iso, pos), foreign=int(sum(pos)),
                recall=float(flag[np.array(pos)].mean()),
                others_flagged=int(flag[~np.array(pos)].sum()),
                defect_fp=f"{int(flag[defect].sum())}/{int(defect.sum())}")


def anomaly_table(rows: dict) -> str:
    """``rows``: {(set, model): anomaly_vs_peers(...)} as a Markdown table."""
    out = ["| set | vectors | foreign | Visual Curation anomaly | LOF | IsolationForest | "
           "foreign flagged @0.5 | others flagged | defects flagged |",
           "|---|---|---|---|---|---|---|---|---|"]
    for (col, model), r in rows.items():
        out.append(f"| {col} | {model} | {r['foreign']} | {r['ours']:.3f} | {r['lof']:.3f} | "
                   f"{r['iforest']:.3f} | {r['recall']:.0%} | {r['others_flagged']} | "
                   f"{r['defect_fp']} |")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sets", default="fmnist:5000,stamps:5000",
                    help="comma-separated source:n (stamps has ~580 clean images at most)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--root", default="/tmp/vc-bench")
    ap.add_argument("--json", help="write the metrics and timings here")
    ap.add_argument("--anomaly-only", action="store_true",
                    help="only the label-free anomaly table (ours vs LOF and IsolationForest, "
                         "EffNet and demo vectors)")
    a = ap.parse_args()
    root = Path(a.root)
    results, timing, anomaly = {}, {}, {}
    for spec in a.sets.split(","):
        source, n = spec.split(":")
        d = build(root, source, int(n), a.seed)
        t = time.perf_counter()
        inp, names, truth = load_input(d)
        t_embed = time.perf_counter() - t
        col = f"{source}-{len(names)}"
        anomaly[(col, "EffNet")] = anomaly_vs_peers(inp.vectors, names, truth)
        anomaly[(col, "demo")] = anomaly_vs_peers(demo_vectors(inp.filepaths), names, truth)
        if a.anomaly_only:
            continue
        fields, summaries, errors, times = run_all(inp)
        results[col] = metrics.score_all(fields, names, truth)
        wall = {k: v for k, v in times.items() if not k.endswith("_cpu")}
        timing[col] = dict(items=len(names), embed_s=round(t_embed, 1),
                           **{k: round(v, 2) for k, v in times.items()},
                           total_wall_s=round(sum(wall.values()), 2),
                           total_cpu_s=round(sum(times.values()) - sum(wall.values()), 2))
        print(f"{col}: analyzers {timing[col]}", flush=True)
    print(f"\nAnomaly AUROC on the planted foreign images, no labels (seed {a.seed}):")
    print(anomaly_table(anomaly))
    if a.anomaly_only:
        return
    print()
    print(metrics.format_table(results))
    print()
    for col, m in results.items():
        print(col, "NMI per level:", " ".join(
            f"L{l}={m[f'nmi_{l}']:.3f}({m[f'clusters_{l}']})" for l in range(1, 6)))
    if a.json:
        Path(a.json).write_text(json.dumps(dict(metrics=results, timing=timing), indent=1))


if __name__ == "__main__":
    main()
