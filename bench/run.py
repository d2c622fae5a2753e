"""``make bench``: every benchmark of the project in one run, written to bench/RESULTS.md.

    make bench                         # all sections
    make bench ARGS="--only embeddings"
    make bench ARGS="--quick"          # smaller sizes (a few minutes)

Sections: quality (ours vs the peers on planted truth), embeddings (end-to-end throughput vs
the forward-pass ceiling, demo model and ViT-B-32 with random weights, which has the real
model's cost), video (core-frame extraction vs raw decode), fmnist70k (all of Fashion-MNIST:
analyze vs the Brain), scale (a million synthetic vectors: time, memory, recall, latency;
bench/scale.py), reliability (the reliability tests run for real: broken files,
SIGKILLs during embedding and during analysis) and nopixels (100,000 vectors whose files cannot be
read: copies grouped from the vectors alone, bench/nopixels.py), knn (our IVF graph vs faiss,
bench/knn_peers.py), cuts (scene cuts vs PySceneDetect, bench/video_cuts.py) and propagation
(label propagation vs LabelSpreading and 1-NN, bench/propagation.py) and review (issue thresholds
moved on a million samples: vc_issues re-derived from the stored scores, bench/review.py) and map
(the embedding map: UMAP/PCA at 100k end to end, the 1M sample-fit path, bench/embedding_map.py)
and panelapp (the cluster panel and operator forms timed through the real App in headless
Chromium, bench/panel_app.py) and ray (compute_embeddings on a local Ray against the in-process
engine, and a capacity plan from the measured per-image costs, bench/ray_engine.py)."""
import argparse
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

os.environ.setdefault("FIFTYONE_DATABASE_NAME", "visual-curation-bench")
os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
os.environ.setdefault("FIFTYONE_DATABASE_VALIDATION", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
WORK = Path(os.environ.get("VC_BENCH_DIR", "/tmp/vc-bench"))
os.environ.setdefault("VISUAL_CURATION_LANCEDB_URI", str(WORK / "lancedb"))
sys.path.insert(0, str(BENCH))


def section_embeddings(quick):
    import bench_embeddings as be
    import quality

    folder = quality.build(WORK, "fmnist", 2000, 0)
    rows = [be.run(folder, "demo", None, 1000 if quick else 2000),
            be.run(folder, "ViT-B-32", None, 128 if quick else 384, repeats=2)]
    return ("Embedding throughput",
            "End-to-end `compute_embeddings` into a fresh LanceDB table (decode + forward + write) "
            "against the same model's forward pass alone on pre-decoded tensors. Images: "
            "planted_sets fmnist (112x112 PNG/JPEG/WebP). Goal: ≥ 90% of the forward ceiling. On "
            "CPU, decoding (forked workers) and the model take turns on all cores, so the "
            "ceiling that decoding leaves is `cores / (cores / forward + decode)`: the bound "
            "column. On a GPU the decoding overlaps the model (threads, batches ahead).\n\n" + be.table(rows))


def section_video(quick):
    """Core-frame extraction speed vs OpenCV's raw decode of the same file."""
    import tempfile

    sys.path.insert(0, str(REPO / "tests"))
    import test_video as tv
    from visual_curation.core import video as vcv

    d = Path(tempfile.mkdtemp(prefix="vc-bench-video-"))
    scenes = []
    for i in range(4 if quick else 12):
        scenes += tv._scene(tv._stamp(i), 5, ["pan", "zoom", "static"][i % 3])
    path = str(tv._write(d / "long.avi", scenes))
    raw_fps, n = vcv.raw_decode_fps(path)
    t = time.perf_counter()
    r = vcv.scan_video(path)
    ours = r.decoded / (time.perf_counter() - t)
    body = ("| video | frames | OpenCV raw decode (frames/s) | core-frame extraction (frames/s) | "
            "ratio | core frames |\n|---|---|---|---|---|---|\n"
            f"| {len(scenes) // tv.FPS} s MJPG {tv.SIZE[0]}x{tv.SIZE[1]} @ {tv.FPS} fps, "
            f"{len(scenes) // (5 * tv.FPS)} scenes | {n} | {raw_fps:.0f} | {ours:.0f} | "
            f"{ours / raw_fps:.0%} | {len(r.core_frames)} |")
    return "Core-frame extraction", (
        "Every frame is decoded (grab) but only sampled frames (4/s) are converted and "
        "compared; the ceiling is OpenCV grabbing every frame of the same file.\n\n" + body)


#: the seed of this run's planted sets (``--seed``; drawn at random when not given)
SEED = None


def run_seed() -> int:
    global SEED
    if SEED is None:
        import random

        SEED = random.SystemRandom().randrange(1, 100000)
    return SEED


def strengths(seed: int) -> tuple:
    """This run's range of near-duplicate edit strengths, drawn from ``seed``: low in [0.05,
    0.5], high in [low + 0.2, 1]."""
    import numpy as np

    rng = np.random.default_rng(seed)
    lo = float(rng.uniform(0.05, 0.5))
    return round(lo, 2), round(float(rng.uniform(lo + 0.2, 1.0)), 2)


def section_quality(quick):
    """Our analyzers vs the peers on planted_sets fmnist 5000 and stamps, built with this run's
    seed and edit strengths, the same EfficientNet-Lite0 vectors for every method, default
    settings; then the duplicate check edit kind by edit kind on sets built from the same seed."""
    import edits
    import metrics
    import peers
    import quality

    seed = run_seed()
    lo, hi = strengths(seed)
    subprocess.run(["bash", str(BENCH / "peers_env.sh")], check=True)
    sets = [("fmnist", 2000 if quick else 5000), ("stamps", 5000)]
    ours, theirs, timing, anomaly = {}, {}, [], {}
    for source, n in sets:
        d = quality.build(WORK, source, n, seed, strength=(lo, hi))
        t = time.perf_counter()
        inp, names, truth = quality.load_input(d)
        t_vec = time.perf_counter() - t
        fields, _, _, times = quality.run_all(inp)
        col = f"{source}-{len(names)}"
        anomaly[(col, "EffNet")] = quality.anomaly_vs_peers(inp.vectors, names, truth)
        anomaly[(col, "demo")] = quality.anomaly_vs_peers(
            quality.demo_vectors(inp.filepaths), names, truth)
        ours[col] = metrics.score_all(fields, names, truth)
        ours_s = sum(v for k, v in times.items() if not k.endswith("_cpu"))
        theirs[col] = peers.run_peers(d, inp.vectors)
        ps = theirs[col]["seconds"]
        timing.append(f"| {col} | {t_vec:.0f} | {ours_s:.1f} | "
                      f"{ps.get('brain_near_duplicates', float('nan')):.1f} | "
                      f"{ps.get('brain_uniqueness', float('nan')):.1f} | "
                      f"{ps.get('fastdup', float('nan')):.1f} | "
                      f"{ps.get('cleanvision', float('nan')):.1f} |")
    per_kind = edits.table(edits.run(WORK, edits.seeded_sets(seed), variants=edits.VARIANTS[:1]))
    body = (f"**Seed {seed}** (sets built by `tools/planted_sets.py` with this seed; "
            f"near-duplicate edit strengths uniform in [{lo:.2f}, {hi:.2f}], drawn from the "
            f"seed; re-run with `make bench ARGS=\"--only quality --seed {seed}\"`).\n\n"
            "Same images, same EfficientNet-Lite0 ImageNet vectors (bench/effnet.py) for every "
            "method that takes vectors; fastdup also with its own model; cleanvision on the "
            "pixels. Visual Curation at default settings; peers at their best threshold where "
            "they have one (pair-level F1 for their duplicates, as they report pairs; our "
            "duplicate F1 counts every pair inside each group, the stricter scoring).\n\n"
            "### Visual Curation\n\n```\n" + metrics.format_table(ours) + "\n```\n\n"
            "### Peers\n\n" + peers.table(theirs) + "\n\n"
            "### Time (wall clock, s)\n\n| set | EffNet vectors (once, shared) | Visual "
            "Curation: all six analyses | Brain near-dups | Brain uniqueness | fastdup (own "
            "model, incl. features) | cleanvision |\n|---|---|---|---|---|---|---|\n"
            + "\n".join(timing)
            + f"\n\n### Anomalies without labels (seed {seed})\n\nAUROC on the planted foreign "
            "images (the other source's images, given a class of this one), no label field: "
            "`anomaly` at its defaults against scikit-learn LocalOutlierFactor (n_neighbors=20) "
            "and IsolationForest (random_state=0) on the same vectors; flags at confidence 0.5, "
            "and how many planted blur/dark/bright images were flagged.\n\n"
            + quality.anomaly_table(anomaly)
            + f"\n\n### Near-duplicates edit by edit (seeds derived from {seed})\n\n"
            + per_kind.replace("\n### ", "\n#### "))
    return "Quality against the peers", body


def section_scale(quick):
    """A million synthetic vectors in LanceDB: all vector analyses, memory, recall, latency;
    then the same analyses on more vectors (``VC_BENCH_SCALE_SIZES``) for the growth."""
    import scale
    import scale_growth

    r = scale.run_million(100_000 if quick else 1_000_000)
    more = [scale_growth.run_size(n) for n in scale_growth.sizes_from_env(quick)]
    return ("A million vectors on one machine", scale.million_table(r)
            + "\n### Growth: more vectors\n\n" + scale_growth.growth_table([r] + more))


def section_fields(quick):
    """The analysis fields written on a one-million-sample FiftyOne dataset, and on three
    million for the growth (extrapolated to ten million)."""
    import field_writes as fw

    n = 100_000 if quick else 1_000_000
    r = fw.run_fields(n)
    big = fw.run_fields(3 * n, compare=False)   # the growth, for 10M on paper
    return "Field writes on a million samples", fw.fields_table(r) + fw.fields_growth_table(r, big)


def section_fmnist70k(quick):
    """All of Fashion-MNIST: analyze() vs the Brain on the same vectors, same run."""
    import scale

    r = scale.run_fmnist70k(20_000 if quick else 70_000)
    return "70k real images against the FiftyOne Brain", scale.fmnist70k_table(r)


def section_incremental(quick):
    """1 % new samples on a 70k dataset: the incremental run vs the full run (issue goal < 5 %),
    earlier samples unchanged, new samples as a from-scratch run places them."""
    import scale

    r = scale.run_incremental70k(20_000 if quick else 70_000)
    return "Incremental: 1 % new samples on 70k", scale.incremental_table(r)


def section_reliability(quick):
    """Runs the reliability tests for real (pytest, real MongoDB + LanceDB) and reports what
    they measured: broken and unusual files, SIGKILLs during embedding and during analysis."""
    import collections
    import json
    import tempfile
    import xml.etree.ElementTree as ET

    tmp = Path(tempfile.mkdtemp(prefix="vc-bench-reliability-"))
    tests = ["tests/test_embeddings.py::test_broken_files_are_reported_and_unusual_files_work",
             "tests/test_reliability.py"]
    env = dict(os.environ, VC_FIGURES=str(tmp / "figures.json"))
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        "--junitxml", str(tmp / "junit.xml"), *tests], cwd=REPO, env=env,
                       capture_output=True, text=True)
    print(r.stdout[-3000:], r.stderr[-3000:])
    suite = ET.parse(tmp / "junit.xml").getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    n, failed, errors, skipped = (int(suite.get(k, 0)) for k in ("tests", "failures", "errors",
                                                                  "skipped"))
    failing = [c.get("name") for c in suite.iter("testcase")
               if c.find("failure") is not None or c.find("error") is not None]
    crashed = [c for c in failing if c.startswith("test_broken_files")]
    fig = json.loads((tmp / "figures.json").read_text())
    f, e, a = fig.get("files", {}), fig.get("embedding_kills", {}), fig.get("analysis_kills", {})
    c = fig.get("commit_kills", {})
    rows = [
        ("files tried (broken + unusual)",
         f"{f.get('tried')} ({f.get('broken')} broken, {f.get('unusual')} unusual)",
         f"{f.get('embedded')} embedded, {f.get('reported')} reported on `vc_error`"),
        ("crashes", str(len(crashed)), "exceptions out of compute_embeddings on those files"),
        ("SIGKILLs during compute_embeddings survived", str(e.get("kills")),
         f"rows committed at each kill: {e.get('rows_at_kill')} of {e.get('items')}; "
         f"resumed run embedded {e.get('resumed_embedded')} (the rest)"),
        ("vectors recomputed after resume", str(e.get("recomputed")),
         "rows of earlier runs whose write time changed"),
        ("LanceDB versions read back, none torn", str(e.get("versions_checked")),
         "every version opened, each id once"),
        ("SIGKILLs during analyze", str(a.get("kills")),
         f"{a.get('fields')} vc_ fields, analysis {a.get('analysis_seconds')} s"),
        ("analysis kills with a half-written field", str(a.get("half_written")),
         (", ".join(a.get("torn") or []) or "none")
         + f"; next run repaired every field: {a.get('repaired_by_next_run')}"),
        ("SIGKILLs inside the field commit", str(c.get("kills_inside_commit")),
         f"{c.get('fields')} fields each, half-written: {c.get('half_written')}; "
         + ", ".join(f"{k}: {v}" for k, v in sorted(
             collections.Counter(c.get("outcomes") or []).items()))),
    ]
    body = ("`pytest " + " ".join(tests) + "` with `VC_FIGURES` set: real MongoDB, real LanceDB, "
            "workers killed with SIGKILL at seeded random points (rows committed, or a share of "
            "the analysis time).\n\n| what | measured | detail |\n|---|---|---|\n"
            + "\n".join(f"| {w} | {m} | {d} |" for w, m, d in rows)
            + f"\n\npytest: {n} tests, {failed} failed, {errors} errors, {skipped} skipped or "
            "expected failures" + (f" (failed: {', '.join(failing)})" if failing else "") + ".")
    return "Reliability", body


def section_clusters(quick):
    import clusters

    return clusters.run(WORK, quick)


def section_knn(quick):
    import knn_peers

    rs = [knn_peers.run(n) for n in ((50_000,) if quick else (100_000, 300_000))]
    return ("kNN graph: ours vs faiss", knn_peers.__doc__.split("\n\n")[0].replace("\n", " ")
            + " Same process, one after the other; faiss uses both cores (OpenMP).\n\n"
            + knn_peers.table(rs))


def section_cuts(quick):
    import video_cuts

    r = video_cuts.run(6 if quick else 24, seed=int(time.time()) % 1000)
    return ("Scene cuts: ours vs PySceneDetect", video_cuts.__doc__.split("\n\n")[0].replace(
        "\n", " ") + "\n\n" + video_cuts.table(r))


def section_nopixels(quick):
    import nopixels

    r = nopixels.run(10_000 if quick else 100_000, seed=int(time.time()) % 1000)
    return ("Vectors without readable pixels", nopixels.__doc__.split("\n\n")[1].replace(
        "\n", " ") + f" Seed {r['seed']}.\n\n" + nopixels.table(r))


def section_propagation(quick):
    import propagation

    r = propagation.run(seed=int(time.time()) % 1000, n_fmnist=2000 if quick else 5000)
    return ("Label propagation", propagation.__doc__.split("\n\n")[0].replace("\n", " ")
            + f" Seed {r['seed']}.\n\n" + propagation.table(r))


def section_review(quick):
    import review

    r = review.run(100_000 if quick else 1_000_000)
    return "Issue thresholds re-derived (review sliders)", review.table(r)


def section_map(quick):
    import embedding_map

    res = {(n, "end to end (SDK)"): embedding_map.run_sdk(n) for n in
           ((20_000,) if quick else (100_000,))}
    if not quick:
        res[(1_000_000, "reduction only")] = embedding_map.run_reduce(1_000_000)
    doc = embedding_map.__doc__.split("\n\n")
    return ("Embedding map", (doc[0] + " " + doc[1]).replace("\n", " ") + "\n\n"
            + embedding_map.table(res))


def section_brainindex(quick):
    import brain_index

    r = brain_index.run(100_000 if quick else 1_000_000)
    return "Similarity index: adding 1 % (ours vs the Brain's LanceDB backend)", \
        brain_index.table(r)


def section_panelapp(quick):
    import panel_app

    r = panel_app.run(300 if quick else 1000)
    return "The App where it is touched most (panel and forms, timed in the real App)", \
        panel_app.table(r)


def section_edits(quick):
    """The duplicate check, edit kind by edit kind, on sets no other bench uses."""
    import edits

    return "Near-duplicates after every everyday edit", edits.table(edits.run(WORK))


def section_ray(quick):
    import quality
    import ray_engine

    r = ray_engine.run(quality.build(WORK, "fmnist", 5000, 0), quality.build(WORK, "stamps", 5000, 0),
                       1000 if quick else 5000)
    return "Embedding on Ray against in-process", ray_engine.table(r)


SECTIONS = {"quality": section_quality, "embeddings": section_embeddings, "video": section_video,
            "fmnist70k": section_fmnist70k, "incremental": section_incremental,
            "scale": section_scale, "fields": section_fields, "clusters": section_clusters,
            "reliability": section_reliability, "nopixels": section_nopixels,
            "knn": section_knn, "cuts": section_cuts, "propagation": section_propagation,
            "review": section_review, "brainindex": section_brainindex, "map": section_map,
            "panelapp": section_panelapp, "ray": section_ray, "edits": section_edits}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default=None, help="comma-separated sections: " + ",".join(SECTIONS))
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=str(BENCH / "RESULTS.md"))
    ap.add_argument("--seed", type=int, default=None,
                    help="seed of the planted sets of the quality section (default: drawn at "
                         "random, stated in the results)")
    a = ap.parse_args()
    global SEED
    SEED = a.seed
    names = a.only.split(",") if a.only else list(SECTIONS)
    WORK.mkdir(parents=True, exist_ok=True)
    out = Path(a.out)
    existing = out.read_text() if out.exists() else ""
    parts = _split(existing)
    for name in names:
        t = time.time()
        title, body = SECTIONS[name](a.quick)
        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        parts[name] = (f"## {title}\n<!-- section:{name} -->\n_Measured {stamp} on "
                       f"{os.cpu_count()} CPU cores ({platform.processor() or platform.machine()}), "
                       f"`make bench ARGS=\"--only {name}{' --quick' if a.quick else ''}\"`, "
                       f"{time.time() - t:.0f} s._\n\n{body}\n")
        print(parts[name])
        out.write_text(_join(parts))


def _split(text):
    parts = {}
    for chunk in text.split("\n## ")[1:]:
        chunk = "## " + chunk
        if "<!-- section:" in chunk:
            name = chunk.split("<!-- section:")[1].split(" -->")[0]
            parts[name] = chunk.rstrip() + "\n"
    return parts


def _join(parts):
    head = ("# Benchmark results\n\nWritten by `make bench` (bench/run.py); every figure here "
            "comes from that command on the machine named in its section.\n\n")
    order = list(SECTIONS) + [k for k in parts if k not in SECTIONS]
    return head + "\n".join(parts[k] for k in order if k in parts)


if __name__ == "__main__":
    main()
