"""``make bench``: every benchmark of the project in one run, written to bench/RESULTS.md.

    make bench                         # all sections
    make bench ARGS="--only embeddings"
    make bench ARGS="--quick"          # smaller sizes (a few minutes)

Sections: quality (ours vs the peers on planted truth), embeddings (end-to-end throughput vs
the forward-pass ceiling, demo model and ViT-B-32 with random weights, which has the real
model's cost), video (core-frame extraction vs raw decode), fmnist70k (all of Fashion-MNIST:
analyze vs the Brain) and scale (a million synthetic vectors: time, memory, recall, latency;
bench/scale.py)."""
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
            be.run(folder, "ViT-B-32", None, 128 if quick else 384)]
    return ("Embedding throughput",
            "End-to-end `compute_embeddings` into a fresh LanceDB table (decode in a thread pool "
            "+ forward + write) against the same model's forward pass alone on pre-decoded "
            "tensors. Images: make_bench fmnist (112x112 PNG/JPEG/WebP). Goal: ≥ 90% of the "
            "forward ceiling.\n\n" + be.table(rows))


def section_video(quick):
    """Core-frame extraction speed vs OpenCV's raw decode of the same file."""
    import tempfile

    import numpy as np

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


def section_quality(quick):
    """Our analyzers vs the peers on make_bench fmnist 5000 seed 0 and stamps seed 0, with the
    same EfficientNet-Lite0 vectors for every method, default settings."""
    import metrics
    import peers
    import quality

    subprocess.run(["bash", str(BENCH / "peers_env.sh")], check=True)
    sets = [("fmnist", 2000 if quick else 5000), ("stamps", 5000)]
    ours, theirs, timing = {}, {}, []
    for source, n in sets:
        d = quality.build(WORK, source, n, 0)
        t = time.perf_counter()
        inp, names, truth = quality.load_input(d)
        t_vec = time.perf_counter() - t
        fields, _, _, times = quality.run_all(inp)
        col = f"{source}-{len(names)}"
        ours[col] = metrics.score_all(fields, names, truth)
        ours_s = sum(v for k, v in times.items() if not k.endswith("_cpu"))
        theirs[col] = peers.run_peers(d, inp.vectors)
        ps = theirs[col]["seconds"]
        timing.append(f"| {col} | {t_vec:.0f} | {ours_s:.1f} | "
                      f"{ps.get('brain_near_duplicates', float('nan')):.1f} | "
                      f"{ps.get('brain_uniqueness', float('nan')):.1f} | "
                      f"{ps.get('fastdup', float('nan')):.1f} | "
                      f"{ps.get('cleanvision', float('nan')):.1f} |")
    body = ("Same images, same EfficientNet-Lite0 ImageNet vectors (bench/effnet.py) for every "
            "method that takes vectors; fastdup also with its own model; cleanvision on the "
            "pixels. Visual Curation at default settings; peers at their best threshold where "
            "they have one (pair-level F1 for their duplicates, as they report pairs; our "
            "duplicate F1 counts every pair inside each group, the stricter scoring).\n\n"
            "### Visual Curation\n\n```\n" + metrics.format_table(ours) + "\n```\n\n"
            "### Peers\n\n" + peers.table(theirs) + "\n\n"
            "### Time (wall clock, s)\n\n| set | EffNet vectors (once, shared) | Visual "
            "Curation: all six analyses | Brain near-dups | Brain uniqueness | fastdup (own "
            "model, incl. features) | cleanvision |\n|---|---|---|---|---|---|---|\n"
            + "\n".join(timing))
    return "Quality against the peers", body


def section_scale(quick):
    """A million synthetic vectors in LanceDB: all vector analyses, memory, recall, latency."""
    import scale

    r = scale.run_million(100_000 if quick else 1_000_000)
    return "A million vectors on one machine", scale.million_table(r)


def section_fmnist70k(quick):
    """All of Fashion-MNIST: analyze() vs the Brain on the same vectors, same run."""
    import scale

    r = scale.run_fmnist70k(20_000 if quick else 70_000)
    return "70k real images against the FiftyOne Brain", scale.fmnist70k_table(r)


SECTIONS = {"quality": section_quality, "embeddings": section_embeddings, "video": section_video,
            "fmnist70k": section_fmnist70k, "scale": section_scale}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default=None, help="comma-separated sections: " + ",".join(SECTIONS))
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=str(BENCH / "RESULTS.md"))
    a = ap.parse_args()
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
