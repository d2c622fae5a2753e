"""Peer tools that cannot live in the main venv: run inside bench/.venv-peers (bench/peers_env.sh).

    bench/.venv-peers/bin/python bench/peers_worker.py BENCH_DIR VECTORS.npy OUT.json \
        [--tools fastdup,fastdup_vectors,cleanlab,cleanvision] [--threads 2] [--work DIR]

BENCH_DIR is a tools/planted_sets.py folder (data/, labels.json, truth.json). Row i of VECTORS.npy
belongs to the i-th file of ``sorted(data/)`` (dot-files skipped), the order bench/peers.py
and bench/effnet.py use. The worker only runs the tools and writes their raw outputs (no
scoring, that is bench/peers.py's job with bench/metrics.py):

  fastdup          its own bundled ONNX model on the image folder; every similarity pair it
                   reports (threshold 0.5, nearest_neighbors_k 2 = its default k), so that the
                   caller can sweep the similarity threshold
  fastdup_vectors  the same, on the given vectors (fastdup.run(annotations=..., embeddings=...))
  cleanlab         out-of-sample class probabilities from KNeighborsClassifier(k=10) on the
                   vectors (cross_val_predict, 5 stratified folds) and
                   cleanlab.filter.find_label_issues(labels, pred_probs) with its defaults
  cleanvision      Imagelab(data_path=data/).find_issues({"blurry", "dark", "light"}) with its
                   default parameters: the is_*_issue flag and *_score of every file

OUT.json: {"files": [...], "<tool>": {"seconds": wall-clock, ...raw outputs...}, "versions": {}}.
A tool that fails gets {"error": "..."} instead, and the others still run.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

os.environ.setdefault("SENTRY_OPT_OUT", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

TOOLS = ("fastdup", "fastdup_vectors", "cleanlab", "cleanvision")


def list_files(bench_dir: Path) -> list[str]:
    return sorted(p.name for p in (bench_dir / "data").iterdir() if not p.name.startswith("."))


def _pairs_from_fastdup(fd, files: list[str]) -> list[list]:
    """Unordered pairs {a, b} (file names) with fastdup's cosine similarity, best first."""
    sim = fd.similarity()
    best = {}
    if sim is None or len(sim) == 0:
        return []
    for a, b, s in zip(sim["filename_from"], sim["filename_to"], sim["distance"]):
        a, b = Path(str(a)).name, Path(str(b)).name
        if a == b:
            continue
        key = (a, b) if a < b else (b, a)
        if float(s) > best.get(key, -2.0):
            best[key] = float(s)
    return sorted([[a, b, s] for (a, b), s in best.items()], key=lambda t: -t[2])


def run_fastdup(bench_dir, files, vectors, threads, work, use_vectors=False, k=2, thresh=0.5):
    import fastdup
    import pandas as pd

    wd = Path(work) / ("fastdup-vec" if use_vectors else "fastdup")
    t = time.perf_counter()
    data = bench_dir / "data"
    if use_vectors:
        fd = fastdup.create(work_dir=str(wd))
        annot = pd.DataFrame({"filename": [str(data / f) for f in files]})
        fd.run(annotations=annot, embeddings=vectors.astype("float32"), overwrite=True,
               nearest_neighbors_k=k, threshold=thresh, num_threads=threads, verbose=False)
    else:
        fd = fastdup.create(work_dir=str(wd), input_dir=str(data))
        fd.run(overwrite=True, nearest_neighbors_k=k, threshold=thresh, num_threads=threads,
               verbose=False)
    pairs = _pairs_from_fastdup(fd, files)
    seconds = time.perf_counter() - t
    return dict(seconds=seconds, nearest_neighbors_k=k, min_similarity=thresh, pairs=pairs,
                model="fastdup bundled ONNX model" if not use_vectors else "given vectors")


def run_cleanlab(bench_dir, files, vectors, threads, work, k=10, folds=5):
    import numpy as np
    from cleanlab.filter import find_label_issues
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.neighbors import KNeighborsClassifier

    labels_json = json.loads((bench_dir / "labels.json").read_text())
    given = labels_json["labels"]
    y = np.array([given[Path(f).stem] for f in files])
    # cleanlab wants classes 0..K-1 all present: remap to the classes that occur
    present = np.unique(y)
    remap = {c: i for i, c in enumerate(present)}
    yy = np.array([remap[c] for c in y])
    t0 = time.perf_counter()
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=0)
    knn = KNeighborsClassifier(n_neighbors=k, n_jobs=threads)
    probs = cross_val_predict(knn, vectors, yy, cv=cv, method="predict_proba")
    t1 = time.perf_counter()
    issues = find_label_issues(labels=yy, pred_probs=probs, n_jobs=1)
    t2 = time.perf_counter()
    return dict(seconds=t2 - t0, knn_seconds=t1 - t0, find_label_issues_seconds=t2 - t1,
                k=k, folds=folds, classes=[int(c) for c in present],
                given=[int(c) for c in yy], pred_probs=np.round(probs, 4).tolist(),
                label_issue=[bool(b) for b in issues])


def run_cleanvision(bench_dir, files, vectors, threads, work):
    from cleanvision import Imagelab

    t = time.perf_counter()
    lab = Imagelab(data_path=str(bench_dir / "data"))
    lab.find_issues({"blurry": {}, "dark": {}, "light": {}}, n_jobs=threads, verbose=False)
    seconds = time.perf_counter() - t
    df = lab.issues
    out = {}
    names = [Path(str(i)).name for i in df.index]
    for col in df.columns:
        vals = df[col].tolist()
        out[col] = {n: (bool(v) if col.startswith("is_") else float(v)) for n, v in zip(names, vals)}
    missing = sorted(set(files) - set(names))
    return dict(seconds=seconds, columns=out, unread=missing)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("bench_dir")
    ap.add_argument("vectors")
    ap.add_argument("out")
    ap.add_argument("--tools", default=",".join(TOOLS))
    ap.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--work", default=None, help="scratch folder (default: a temp dir)")
    a = ap.parse_args(argv)
    import numpy as np

    bench_dir = Path(a.bench_dir).resolve()
    files = list_files(bench_dir)
    vectors = np.load(a.vectors).astype("float32")
    if len(vectors) != len(files):
        raise SystemExit(f"{a.vectors}: {len(vectors)} rows for {len(files)} files")
    result = {"bench_dir": str(bench_dir), "files": files, "versions": {}}
    for mod in ("fastdup", "cleanvision", "cleanlab", "sklearn", "numpy"):
        try:
            result["versions"][mod] = __import__(mod).__version__
        except Exception as e:  # noqa: BLE001
            result["versions"][mod] = f"unavailable: {e}"
    tools = [t for t in a.tools.split(",") if t]
    if len(tools) > 1:
        # one process per tool: fastdup installs a SIGSEGV handler and loads its own OpenCV and
        # onnxruntime, which then crash cleanvision's forked workers at teardown; isolated runs
        # also keep each tool's wall clock free of the others' imports
        with tempfile.TemporaryDirectory(prefix="peers-out-", dir=a.work) as tmpd:
            for tool in tools:
                one = Path(tmpd) / f"{tool}.json"
                cmd = [sys.executable, __file__, a.bench_dir, a.vectors, str(one), "--tools", tool,
                       "--threads", str(a.threads)] + (["--work", a.work] if a.work else [])
                rc = subprocess.run(cmd).returncode
                if one.exists():
                    result[tool] = json.loads(one.read_text())[tool]
                else:
                    result[tool] = {"error": f"worker for {tool} exited with status {rc}"}
    else:
        runners = {"fastdup": run_fastdup,
                   "fastdup_vectors": lambda *x: run_fastdup(*x, use_vectors=True),
                   "cleanlab": run_cleanlab, "cleanvision": run_cleanvision}
        with tempfile.TemporaryDirectory(prefix="peers-", dir=a.work) as work:
            for tool in tools:
                print(f"peers_worker: {tool} ...", file=sys.stderr, flush=True)
                try:
                    result[tool] = runners[tool](bench_dir, files, vectors, a.threads, work)
                    print(f"peers_worker: {tool} {result[tool]['seconds']:.1f}s",
                          file=sys.stderr, flush=True)
                except Exception as e:  # noqa: BLE001
                    traceback.print_exc()
                    result[tool] = {"error": f"{type(e).__name__}: {e}"}
    tmp = Path(a.out).with_suffix(".tmp")
    tmp.write_text(json.dumps(result))
    os.replace(tmp, a.out)


if __name__ == "__main__":
    main()
