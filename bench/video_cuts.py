"""Scene cuts: ``core/video.py``'s sampled histogram detector against PySceneDetect
(``ContentDetector`` and ``AdaptiveDetector``, every frame) on generated videos with known cuts:
real Tux Paint images filmed by a moving camera (pan, zoom, static; the test suite's video
builder), 2-6 scenes of 1.5-6 s each, drawn from the seed. A detected cut counts when it lies
within 0.5 s of a true one (each true cut matched once).

    python bench/video_cuts.py --videos 12 --seed 0
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
TOL_S = 0.5


def build(folder, n_videos, seed):
    sys.path.insert(0, str(REPO / "tests"))
    import test_video as tv

    rng = np.random.default_rng(seed)
    videos = []
    for v in range(n_videos):
        frames, cuts, t = [], [], 0.0
        for s in range(int(rng.integers(2, 7))):
            secs = float(rng.uniform(1.5, 6.0))
            if s:
                cuts.append(t)
            img = tv._stamp(int(rng.integers(0, 10_000)))
            scene = tv._scene(img, secs, str(rng.choice(["pan", "zoom", "static"])))
            frames += scene
            t += len(scene) / tv.FPS
        path = tv._write(Path(folder) / f"v{v:03d}.avi", frames)
        videos.append((str(path), cuts, len(frames)))
    return videos


def match(found, truth):
    """(true cuts found, false cuts)."""
    left = list(truth)
    hits = 0
    for c in sorted(found):
        near = [t for t in left if abs(t - c) <= TOL_S]
        if near:
            left.remove(min(near, key=lambda t: abs(t - c)))
            hits += 1
    return hits, len(found) - hits


def ours(path):
    from visual_curation.core.video import scan_video

    r = scan_video(path)
    return [ms / 1000.0 for ms in r.scene_starts_ms[1:]]


def scenedetect_cuts(detector):
    def run(path):
        from scenedetect import detect

        scenes = detect(path, detector())
        return [start.get_seconds() for start, _ in scenes[1:]]
    return run


def run(n_videos=12, seed=0):
    from scenedetect import AdaptiveDetector, ContentDetector

    folder = tempfile.mkdtemp(prefix="vc-bench-cuts-")
    videos = build(folder, n_videos, seed)
    methods = {"core/video.py (4 samples/s)": ours,
               "PySceneDetect ContentDetector": scenedetect_cuts(ContentDetector),
               "PySceneDetect AdaptiveDetector": scenedetect_cuts(AdaptiveDetector)}
    n_cuts = sum(len(c) for _, c, _ in videos)
    n_frames = sum(f for _, _, f in videos)
    rows = []
    for name, fn in methods.items():
        hits = false = 0
        t = time.perf_counter()
        for path, cuts, _ in videos:
            h, f = match(fn(path), cuts)
            hits, false = hits + h, false + f
        secs = time.perf_counter() - t
        rows.append(dict(method=name, found=hits, cuts=n_cuts, false=false,
                         fps=round(n_frames / secs)))
    return dict(videos=n_videos, seed=seed, frames=n_frames, rows=rows)


def table(r):
    out = [f"{r['videos']} videos, {r['frames']:,} frames, seed {r['seed']}.\n",
           "| detector | true cuts found | false cuts | frames/s |", "|---|---|---|---|"]
    out += [f"| {x['method']} | {x['found']} / {x['cuts']} | {x['false']} | {x['fps']:,} |"
            for x in r["rows"]]
    return "\n".join(out)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--videos", type=int, default=12)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    r = run(a.videos, a.seed)
    print(json.dumps(r, indent=1))
    print(table(r))
