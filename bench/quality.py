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

    extra = "".join(f"-{k}{v}" for k, v in sorted(kw.items()))
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


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sets", default="fmnist:5000,stamps:5000",
                    help="comma-separated source:n (stamps has ~580 clean images at most)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--root", default="/tmp/vc-bench")
    ap.add_argument("--json", help="write the metrics and timings here")
    a = ap.parse_args()
    root = Path(a.root)
    results, timing = {}, {}
    for spec in a.sets.split(","):
        source, n = spec.split(":")
        d = build(root, source, int(n), a.seed)
        t = time.perf_counter()
        inp, names, truth = load_input(d)
        t_embed = time.perf_counter() - t
        fields, summaries, errors, times = run_all(inp)
        col = f"{source}-{len(names)}"
        results[col] = metrics.score_all(fields, names, truth)
        wall = {k: v for k, v in times.items() if not k.endswith("_cpu")}
        timing[col] = dict(items=len(names), embed_s=round(t_embed, 1),
                           **{k: round(v, 2) for k, v in times.items()},
                           total_wall_s=round(sum(wall.values()), 2),
                           total_cpu_s=round(sum(times.values()) - sum(wall.values()), 2))
        print(f"{col}: analyzers {timing[col]}", flush=True)
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
