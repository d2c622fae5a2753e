"""Vectors whose image files cannot be read (moved media, remote paths, vectors brought without
images): ``analyze`` must still group the near-identical copies, from the vectors alone, say so
on each sample and in the summary, and keep the terminal quiet.

N synthetic 512-d vectors (``scale.synth_blocks``: classes x modes, 2 % planted copies at cosine
~0.9999) on samples whose filepaths do not exist, imported with ``import_embeddings``, then
``analyze(analyses=["clusters", "duplicates", "uniqueness"])``.

    python bench/nopixels.py --n 100000
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))


def _grouped_share(groups, pairs):
    ok = sum(groups[a] is not None and groups[a] == groups[b] for a, b in pairs)
    return ok / max(len(pairs), 1)


def run(n=100_000, seed=0, name=None):
    """Builds the dataset, analyses it with its stderr captured, returns the figures."""
    import fiftyone as fo

    import visual_curation as vc
    from scale import synth_blocks

    blocks = list(synth_blocks(n, seed=seed))
    X = np.concatenate([b[1] for b in blocks])
    pairs = blocks[-1][4]
    name = name or f"vc-bench-nopixels-{n}"
    if fo.dataset_exists(name):
        fo.delete_dataset(name)
    ds = fo.Dataset(name)
    try:
        t = time.perf_counter()
        ds.add_samples([fo.Sample(filepath=f"/missing-media/{i:07d}.jpg") for i in range(n)],
                       progress=False)
        t_build = time.perf_counter() - t
        vc.import_embeddings(ds, embeddings=X)
        err = tempfile.TemporaryFile()
        saved = os.dup(2)
        os.dup2(err.fileno(), 2)
        try:
            t = time.perf_counter()
            summary = vc.analyze(ds, analyses=["clusters", "duplicates", "uniqueness"],
                                 progress=False)
            t_an = time.perf_counter() - t
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        err.seek(0)
        stderr = err.read().decode(errors="replace").splitlines()
        groups = ds.values("vc_dup_group")
        errors = ds.values("vc_error")
        planted = {tuple(sorted(p)) for p in pairs.tolist()}
        in_group = {}
        for i, g in enumerate(groups):
            if g is not None:
                in_group.setdefault(g, []).append(i)
        grouped_pairs = {(a, b) for mem in in_group.values() for x, a in enumerate(mem)
                         for b in mem[x + 1:]}
        return dict(
            n=n, seed=seed, planted_pairs=len(planted),
            recall=_grouped_share(groups, pairs.tolist()),
            false_pairs=len(grouped_pairs - planted),
            with_reason=sum(1 for e in errors if e and "vectors alone" in e),
            stderr_lines=len(stderr),
            stderr_file_lines=sum(1 for s in stderr if "/missing-media/" in s),
            summary_pixel_errors=summary.get("pixel_errors"),
            seconds_add_samples=round(t_build, 1), seconds_analyze=round(t_an, 1))
    finally:
        vc.delete_run(ds)
        ds.delete()


def table(r):
    return ("| samples | planted copy pairs | grouped | false pairs | samples whose vc_error "
            "says why | terminal lines (of which naming a file) | analyze (s) |\n"
            "|---|---|---|---|---|---|---|\n"
            f"| {r['n']:,} | {r['planted_pairs']:,} | {r['recall']:.2%} | {r['false_pairs']} | "
            f"{r['with_reason']:,} | {r['stderr_lines']} ({r['stderr_file_lines']}) | "
            f"{r['seconds_analyze']} |")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    os.environ.setdefault("FIFTYONE_DATABASE_NAME", "visual-curation-bench")
    os.environ.setdefault("VISUAL_CURATION_LANCEDB_URI", tempfile.mkdtemp(prefix="vc-nopixels-"))
    r = run(a.n, a.seed)
    print(json.dumps(r, indent=1))
    print(table(r))
