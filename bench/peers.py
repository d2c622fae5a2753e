"""Peer tools side by side, on the same benchmark sets and the same EfficientNet-Lite0 vectors.

    .venv/bin/python bench/peers.py                      # fmnist 5000 seed 0 + stamps seed 0
    .venv/bin/python bench/peers.py --sets fmnist:5000:0 --json out.json

    from bench.peers import run_peers
    r = run_peers(bench_dir, vectors)   # {"metrics": {peer: {...}}, "seconds": {...}, "versions": {...}}

Peers (what each is given is in bench/README.md):
  brain        FiftyOne Brain (main venv): compute_near_duplicates(embeddings=EffNet) and its
               find_duplicates(thresh) swept over cosine distances; timing of
               compute_uniqueness + compute_near_duplicates + compute_similarity(lancedb)
  fastdup      its bundled ONNX model on the image folder (bench/.venv-peers), similarity
               threshold swept; fastdup_vectors: the same on the EffNet vectors
  cleanlab     find_label_issues on out-of-sample kNN(k=10) probabilities from the EffNet vectors
  knn_vote     the same probabilities, score 1 - p(given label), at the P = R operating point
  cleanvision  blurry / dark / light flags with its defaults on the image folder

Scoring is bench/metrics.py's (dup_prf on the groups that the predicted pairs form, mislabel_pr,
quality_f1); peers.py adds only the threshold sweeps, the raw pair-level dup F1 (pair_f1) and
the kNN-vote P = R operating point. Every figure at a "best threshold" is an oracle figure (the
threshold is picked on the truth it is scored on), as the peers' issue asks.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

for _k, _v in {"FIFTYONE_DATABASE_NAME": "visual-curation-bench", "FIFTYONE_DO_NOT_TRACK": "true",
               "FIFTYONE_DATABASE_VALIDATION": "false", "HF_HUB_OFFLINE": "1",
               "SENTRY_OPT_OUT": "1"}.items():
    os.environ.setdefault(_k, _v)

import numpy as np

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
WORK = Path(os.environ.get("VC_BENCH_DIR", "/tmp/vc-bench"))
PEERS_VENV = Path(os.environ.get("PEERS_VENV", BENCH / ".venv-peers"))
for _p in (REPO.parent, REPO):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

import metrics  # noqa: E402  (bench/metrics.py)

DEFAULT_SETS = (("fmnist", 5000, 0), ("stamps", 5000, 0))
# sweeps: Brain cosine-distance thresholds, fastdup cosine-similarity thresholds
BRAIN_THRESHOLDS = tuple(np.round(np.arange(0.005, 0.301, 0.005), 3))
FASTDUP_THRESHOLDS = tuple(np.round(np.arange(0.50, 1.0001, 0.005), 3))


# ----------------------------------------------------------------------------- data


def make_bench(source, n=5000, seed=0, **kw) -> Path:
    """The planted-truth folder for (source, n, seed) (``tools/planted_sets.py``), built on
    first use (same layout as run.py)."""
    from tools.planted_sets import build_set

    return build_set(WORK / f"{source}-{n}-{seed}", source=source, n=n, seed=seed, **kw)


def list_files(bench_dir) -> list[str]:
    """File names of data/, sorted: the row order of the vectors everywhere in bench/peers*."""
    return sorted(p.name for p in (Path(bench_dir) / "data").iterdir() if not p.name.startswith("."))


def effnet_vectors(bench_dir) -> np.ndarray:
    from effnet import embed_files

    data = Path(bench_dir) / "data"
    return embed_files([str(data / f) for f in list_files(bench_dir)])


def load_truth(bench_dir) -> dict:
    return metrics.load_truth(bench_dir)


# ----------------------------------------------------------------------------- Brain


def _load_dataset(bench_dir, name):
    import fiftyone as fo

    if fo.dataset_exists(name):
        fo.delete_dataset(name)
    return fo.Dataset.from_dir(dataset_dir=str(bench_dir), name=name, label_field="ground_truth",
                               dataset_type=fo.types.FiftyOneImageClassificationDataset)


def run_brain(bench_dir, vectors, thresholds=BRAIN_THRESHOLDS, timing=True) -> dict:
    """Near-duplicate pairs of FiftyOne Brain for each distance threshold, and the timings."""
    import fiftyone as fo
    import fiftyone.brain as fob

    fo.config.show_progress_bars = False
    files = list_files(bench_dir)
    row = {f: i for i, f in enumerate(files)}
    name = f"vc-peers-{Path(bench_dir).name}-{os.getpid()}"
    t0 = time.perf_counter()
    ds = _load_dataset(bench_dir, name)
    load_s = time.perf_counter() - t0
    try:
        ids = ds.values("id")
        names = [Path(p).name for p in ds.values("filepath")]
        emb = np.ascontiguousarray(vectors[[row[n] for n in names]], dtype=np.float32)
        id2name = dict(zip(ids, names))
        out = {"dataset_load_seconds": load_s}

        t = time.perf_counter()
        index = fob.compute_near_duplicates(ds, embeddings=emb, threshold=0.2, progress=False)
        out["near_duplicates_seconds"] = time.perf_counter() - t
        sweep = {}
        t = time.perf_counter()
        for th in thresholds:
            index.find_duplicates(thresh=float(th))
            pairs = [(id2name[k], id2name[d], float(dist))
                     for k, v in index.neighbors_map.items() for d, dist in v]
            sweep[float(th)] = pairs
        out["sweep_seconds"] = time.perf_counter() - t
        out["pairs_by_threshold"] = sweep
        index.cleanup() if hasattr(index, "cleanup") else None

        if timing:
            t = time.perf_counter()
            fob.compute_uniqueness(ds, embeddings=emb, progress=False)
            out["uniqueness_seconds"] = time.perf_counter() - t
            with tempfile.TemporaryDirectory(prefix="vc-peers-lancedb-") as uri:
                t = time.perf_counter()
                fob.compute_uniqueness(ds, embeddings=emb, progress=False)
                fob.compute_near_duplicates(ds, embeddings=emb, threshold=0.2, progress=False)
                fob.compute_similarity(ds, embeddings=emb, backend="lancedb", uri=uri,
                                       brain_key="vc_peers_lancedb", progress=False)
                out["uniq_dups_sim_seconds"] = time.perf_counter() - t
        out["seconds"] = out["near_duplicates_seconds"]
        return out
    finally:
        ds.delete()


# ----------------------------------------------------------------------------- worker


def run_worker(bench_dir, vectors, tools=("fastdup", "fastdup_vectors", "cleanlab", "cleanvision"),
               threads=2, quiet=True) -> dict:
    """bench/peers_worker.py in bench/.venv-peers (built by bench/peers_env.sh when missing)."""
    env = dict(os.environ, PEERS_VENV=str(PEERS_VENV))
    subprocess.run(["bash", str(BENCH / "peers_env.sh")], check=True, env=env)
    with tempfile.TemporaryDirectory(prefix="vc-peers-") as tmp:
        vpath, opath = Path(tmp) / "vectors.npy", Path(tmp) / "out.json"
        np.save(vpath, np.asarray(vectors, np.float32))
        cmd = [str(PEERS_VENV / "bin" / "python"), str(BENCH / "peers_worker.py"), str(bench_dir),
               str(vpath), str(opath), "--tools", ",".join(tools), "--threads", str(threads),
               "--work", tmp]
        r = subprocess.run(cmd, env=env, stdout=subprocess.PIPE if quiet else None,
                           stderr=subprocess.PIPE if quiet else None, text=True)
        if not opath.exists():
            raise RuntimeError(f"peers_worker failed ({r.returncode}): {(r.stderr or '')[-3000:]}")
        return json.loads(opath.read_text())


# ----------------------------------------------------------------------------- scoring


# Scores come from bench/metrics.py. What it lacks, and lives here: turning a tool's pair list
# into the duplicate groups that metrics.dup_prf scores, the threshold sweeps, and the kNN-vote
# P = R operating point.


def pairs_to_groups(pairs, files) -> list:
    """Connected components of the predicted pairs as a per-file group id (None = no duplicate),
    the ``vc_dup_group`` form that metrics.dup_prf scores (all pairs inside each group). For the
    Brain, whose neighbors_map is {kept: [duplicates]}, the components are exactly those groups."""
    pos = {f: i for i, f in enumerate(files)}
    parent = list(range(len(files)))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i
    touched = set()
    for a, b, *_ in pairs:
        i, j = pos[a], pos[b]
        touched.update((i, j))
        ri, rj = find(i), find(j)
        if ri != rj:
            parent[max(ri, rj)] = min(ri, rj)
    return [find(i) if i in touched else None for i in range(len(files))]


def _group_pair_count(groups) -> int:
    sizes = {}
    for g in groups:
        if g is not None:
            sizes[g] = sizes.get(g, 0) + 1
    return sum(k * (k - 1) // 2 for k in sizes.values())


def pair_prf(pairs, files, true_pairs) -> dict:
    """Pair-level P/R/F1 of the reported pairs themselves, without closing them into groups
    (metrics.py scores groups; a tool's raw pair list needs this too). Same truth pairs."""
    pos = {f: i for i, f in enumerate(files)}
    pred = {tuple(sorted((pos[a], pos[b]))) for a, b, *_ in pairs if a != b}
    tp = len(pred & true_pairs)
    p = tp / len(pred) if pred else 0.0
    r = tp / len(true_pairs) if true_pairs else 1.0
    return dict(f1=2 * p * r / (p + r) if p + r else 0.0, precision=p, recall=r)


def best_dup_f1(files, truth, pairs_by_threshold: dict) -> dict:
    """Best-threshold duplicate scores (oracle thresholds, picked on the truth they are scored
    on, as the issue asks), two ways:

    * f1 / precision / recall / threshold: metrics.dup_prf on the groups the pairs form
      (connected components: what a user gets when acting on the pairs, and how the project's
      own vc_dup_group is scored);
    * pair_f1 / pair_precision / pair_recall / pair_threshold: the raw pairs as reported.

    Loose thresholds chain the pairs into huge groups whose pair lists metrics.dup_prf would
    enumerate (millions); a threshold whose group F1 cannot beat the best so far even with every
    true pair found (F1 <= 2T / (pred + T)) is not scored, so the result stays exact."""
    true_pairs = metrics.true_dup_pairs(files, truth)
    n_true = len(true_pairs)
    best, best_pair = None, None
    for th, pairs in pairs_by_threshold.items():
        pp = pair_prf(pairs, files, true_pairs)
        if best_pair is None or pp["f1"] > best_pair["pair_f1"]:
            best_pair = {f"pair_{k}": v for k, v in pp.items()}
            best_pair.update(pair_threshold=th, pair_pairs=len(pairs))
        groups = pairs_to_groups(pairs, files)
        n_pred = _group_pair_count(groups)
        if best is not None and 2 * n_true / max(n_pred + n_true, 1) <= best["f1"]:
            continue
        m = metrics.dup_prf(groups, files, truth)
        if best is None or m["dup_f1"] > best["f1"]:
            best = dict(f1=m["dup_f1"], precision=m["dup_precision"], recall=m["dup_recall"],
                        threshold=th, pairs=len(pairs), pred_pairs=m["dup_pred_pairs"],
                        true_pairs=m["dup_true_pairs"])
    return dict(best, **best_pair)


def sweep_similarity_pairs(pairs, thresholds=FASTDUP_THRESHOLDS) -> dict:
    """{threshold: pairs with similarity >= threshold} for [a, b, similarity] lists."""
    return {float(t): [p for p in pairs if p[2] >= t] for t in sorted(thresholds, reverse=True)}


def knn_vote_equal_pr(files, truth, pred_probs, given) -> dict:
    """kNN vote baseline: score = 1 - p(given label) from the out-of-sample k=10 probabilities,
    ties (the votes take k+1 values) broken by the vote share of the strongest other class; the
    top M files are flagged, M = number of mislabeled files, so P = R. Also the tie-averaged
    figure (expected precision when tied files are ordered at random)."""
    p = np.asarray(pred_probs, float)
    g = np.asarray(given)
    mis = np.array([bool(truth[f]["mislabeled"]) for f in files])
    m = int(mis.sum())
    pg = p[np.arange(len(g)), g]
    other = np.where(np.eye(p.shape[1], dtype=bool)[g], -1.0, p).max(1)
    score = 1.0 - pg
    order = np.lexsort((-other, -score))
    flagged = np.zeros(len(files), bool)
    flagged[order[:m]] = True
    thr = np.sort(score)[::-1][m - 1]
    above, tied = score > thr, score == thr
    expected = ((above & mis).sum() + (m - above.sum()) * (tied & mis).sum() / tied.sum()) / m
    pr = metrics.mislabel_pr(flagged.astype(float), files, truth)
    return dict(precision=pr["mislabel_precision"], recall=pr["mislabel_recall"], flagged=m,
                tie_averaged=float(expected), score_threshold=float(thr))


def score(bench_dir, brain: dict | None, worker: dict | None) -> dict:
    """Metrics of every peer against truth.json, in one flat-ish dict."""
    truth = load_truth(bench_dir)
    files = list_files(bench_dir)
    out = {}
    if brain and "pairs_by_threshold" in brain:
        out["brain_dups"] = best_dup_f1(files, truth, brain["pairs_by_threshold"])
    worker = worker or {}
    for tool in ("fastdup", "fastdup_vectors"):
        w = worker.get(tool) or {}
        if "pairs" in w:
            out[tool] = best_dup_f1(files, truth, sweep_similarity_pairs(w["pairs"]))
        elif "error" in w:
            out[tool] = {"error": w["error"]}
    w = worker.get("cleanlab") or {}
    if "label_issue" in w:
        assert w.get("files", files) == files
        iss = np.asarray(w["label_issue"], float)
        pr = metrics.mislabel_pr(iss, files, truth)
        out["cleanlab"] = dict(precision=pr["mislabel_precision"], recall=pr["mislabel_recall"],
                               flagged=int(iss.sum()))
        out["knn_vote"] = knn_vote_equal_pr(files, truth, w["pred_probs"], w["given"])
    elif "error" in w:
        out["cleanlab"] = {"error": w["error"]}
    w = worker.get("cleanvision") or {}
    if "columns" in w:
        cols = w["columns"]
        flags = {kind: [float(cols[col].get(f, False)) for f in files]
                 for kind, col in (("blur", "is_blurry_issue"), ("dark", "is_dark_issue"),
                                   ("bright", "is_light_issue"))}
        q = metrics.quality_f1(flags, files, truth)
        out["cleanvision"] = {k: dict(f1=q[f"{k}_f1"], precision=q[f"{k}_precision"],
                                      recall=q[f"{k}_recall"], flagged=int(sum(flags[k])))
                              for k in flags}
    elif "error" in w:
        out["cleanvision"] = {"error": w["error"]}
    return out


def run_peers(bench_dir, vectors=None, tools=("brain", "fastdup", "fastdup_vectors", "cleanlab",
                                              "cleanvision"), threads=2, verbose=False) -> dict:
    """Runs the peers on one planted-truth folder with the given (N, D) vectors (rows in
    ``list_files(bench_dir)`` order; EffNet-Lite0 vectors when None) and scores them.

    Returns {"metrics": {peer: {...}}, "seconds": {peer: wall-clock}, "versions": {...},
    "bench_dir", "n_images"}. Seconds exclude the one-off venv build and dataset loading."""
    import logging

    bench_dir = Path(bench_dir)
    files = list_files(bench_dir)
    if vectors is None:
        vectors = effnet_vectors(bench_dir)
    vectors = np.asarray(vectors, np.float32)
    if len(vectors) != len(files):
        raise ValueError(f"{len(vectors)} vectors for {len(files)} files in {bench_dir}/data")
    if not verbose:
        for name in ("fiftyone", "fiftyone.brain", "eta"):
            logging.getLogger(name).setLevel(logging.WARNING)
    seconds, brain, worker = {}, None, {}
    if "brain" in tools:
        brain = run_brain(bench_dir, vectors)
        seconds["brain_near_duplicates"] = brain["near_duplicates_seconds"]
        seconds["brain_uniqueness"] = brain["uniqueness_seconds"]
        seconds["brain_uniq_dups_sim_lancedb"] = brain["uniq_dups_sim_seconds"]
    wtools = [t for t in tools if t != "brain"]
    if wtools:
        worker = run_worker(bench_dir, vectors, wtools, threads=threads, quiet=not verbose)
        for t in wtools:
            if "seconds" in worker.get(t, {}):
                seconds[t] = worker[t]["seconds"]
        if "seconds" in worker.get("cleanlab", {}):
            seconds["knn_probs"] = worker["cleanlab"]["knn_seconds"]
            seconds["cleanlab_find_label_issues"] = worker["cleanlab"]["find_label_issues_seconds"]
    from importlib.metadata import version

    versions = dict(worker.get("versions", {}), fiftyone=version("fiftyone"),
                    fiftyone_brain=version("fiftyone-brain"), lancedb=version("lancedb"))
    return {"bench_dir": str(bench_dir), "n_images": len(files), "metrics": score(bench_dir, brain, worker),
            "seconds": {k: round(v, 2) for k, v in seconds.items()}, "versions": versions}


# ----------------------------------------------------------------------------- table / CLI

REFERENCE = {  # figures measured before (issue), fmnist 5000 seed 0 / stamps seed 0
    "fastdup": (0.56, 0.50), "brain_dups": (0.69, 0.69), "knn_vote": (0.67, 0.52),
    "cleanlab": ("P 0.30 R 0.90", "P 0.14 R 0.85"), "cv_blur": (0.00, 0.00),
    "cv_dark": (0.97, 1.00), "cv_bright": (0.88, 0.05)}


def _rows(res):
    m, s = res["metrics"], res["seconds"]

    def f(d, key="f1"):
        return "error" if "error" in (d or {"error": 1}) else f"{d[key]:.2f}"
    rows = []
    if "brain_dups" in m:
        b = m["brain_dups"]
        rows.append(("brain_dups", "FiftyOne Brain near-dups (EffNet)", "dup F1 groups / pairs",
                     f"{b['f1']:.2f} / {b['pair_f1']:.2f}",
                     f"P {b['precision']:.2f} R {b['recall']:.2f} @ dist {b['threshold']:.3f}"
                     f"; pairs @ {b['pair_threshold']:.3f}", s.get("brain_near_duplicates")))
    for t, label in (("fastdup", "fastdup (own model)"), ("fastdup_vectors", "fastdup (EffNet vectors)")):
        if t in m:
            d = m[t]
            rows.append((t, label, "dup F1 groups / pairs",
                         "error" if "error" in d else f"{d['f1']:.2f} / {d['pair_f1']:.2f}",
                         "" if "error" in d else
                         f"P {d['precision']:.2f} R {d['recall']:.2f} @ sim {d['threshold']:.3f}"
                         f"; pairs @ {d['pair_threshold']:.3f}", s.get(t)))
    if "knn_vote" in m:
        d = m["knn_vote"]
        rows.append(("knn_vote", "kNN vote k=10 (EffNet)", "mislabel P=R", f"{d['precision']:.2f}",
                     f"tie-averaged {d['tie_averaged']:.2f}", s.get("knn_probs")))
    if "cleanlab" in m:
        d = m["cleanlab"]
        rows.append(("cleanlab", "cleanlab find_label_issues", "mislabel P / R",
                     "error" if "error" in d else f"P {d['precision']:.2f} R {d['recall']:.2f}",
                     "" if "error" in d else f"{d['flagged']} flagged",
                     s.get("cleanlab")))
    if "cleanvision" in m:
        d = m["cleanvision"]
        for kind in ("blur", "dark", "bright"):
            k = d.get(kind, d)
            rows.append((f"cv_{kind}", f"cleanvision {'light' if kind == 'bright' else kind}",
                         f"{kind} F1", f(k), "" if "error" in k else
                         f"P {k['precision']:.2f} R {k['recall']:.2f}",
                         s.get("cleanvision") if kind == "blur" else None))
    return rows


def table(results: dict) -> str:
    """Markdown table, one column pair per benchmark set."""
    names = list(results)
    head = "| peer | metric | " + " | ".join(f"{n} | detail | s" for n in names) + " | reference |"
    sep = "|" + "---|" * (2 + 3 * len(names) + 1)
    per = [{r[0]: r for r in _rows(results[n])} for n in names]
    keys = list(dict.fromkeys(k for p in per for k in p))
    lines = [head, sep]
    for k in keys:
        first = next(p[k] for p in per if k in p)
        cells = []
        for p in per:
            r = p.get(k)
            cells += [r[3], r[4], "" if r[5] is None else f"{r[5]:.1f}"] if r else ["", "", ""]
        ref = REFERENCE.get(k)
        lines.append(f"| {first[1]} | {first[2]} | " + " | ".join(cells) + " | "
                     + (" / ".join(x if isinstance(x, str) else f"{x:.2f}" for x in ref) if ref else "") + " |")
    return "\n".join(lines)


def timing_table(results: dict) -> str:
    names = list(results)
    keys = list(dict.fromkeys(k for n in names for k in results[n]["seconds"]))
    lines = ["| step (wall clock, s) | " + " | ".join(f"{n} ({results[n]['n_images']} images)" for n in names) + " |",
             "|---|" + "---|" * len(names)]
    for k in keys:
        lines.append(f"| {k} | " + " | ".join(str(results[n]["seconds"].get(k, "")) for n in names) + " |")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sets", default=",".join(f"{s}:{n}:{r}" for s, n, r in DEFAULT_SETS),
                    help="comma-separated source:n:seed (default: %(default)s)")
    ap.add_argument("--tools", default="brain,fastdup,fastdup_vectors,cleanlab,cleanvision")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default=None, help="also write all results here")
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args(argv)
    results = {}
    for spec in a.sets.split(","):
        src, n, seed = spec.split(":")
        d = make_bench(src, int(n), int(seed))
        t = time.perf_counter()
        v = effnet_vectors(d)
        print(f"{d}: {len(v)} EffNet vectors in {time.perf_counter() - t:.1f}s", file=sys.stderr)
        results[f"{src}-{n}-{seed}"] = run_peers(d, v, tools=a.tools.split(","), threads=a.threads,
                                                 verbose=a.verbose)
        print(json.dumps({k: v for k, v in results[f'{src}-{n}-{seed}'].items() if k != 'metrics'}),
              file=sys.stderr)
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=1))
    print(table(results))
    print()
    print(timing_table(results))
    return results


if __name__ == "__main__":
    main()
