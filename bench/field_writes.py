#!/usr/bin/env python3
"""Field writes at scale: the 15 ``vc_`` fields of an analysis committed on a FiftyOne dataset of
``--n`` samples (1M in ``make bench``, and 3M for the growth), in a child process whose RSS is
sampled; FiftyOne's own bulk ``set_values`` of one field for comparison.

    python bench/field_writes.py --n 1000000 --out /tmp/fields.json   # the child process
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scale import WORK, RssSampler  # noqa: E402

FIELDS_DATASET = "vc-bench-fields-{n}"


def build_fields_dataset(n, batch=50_000):
    """A persistent FiftyOne dataset of ``n`` image samples (reused when it exists)."""
    import fiftyone as fo

    name = FIELDS_DATASET.format(n=n)
    if fo.dataset_exists(name):
        ds = fo.load_dataset(name)
        if len(ds) == n:
            return ds, 0.0
        ds.delete()
    t = time.perf_counter()
    ds = fo.Dataset(name, persistent=True)
    for b0 in range(0, n, batch):
        ds.add_samples([fo.Sample(filepath=f"/bench/images/{i:07d}.jpg")
                        for i in range(b0, min(n, b0 + batch))], progress=False)
    return ds, time.perf_counter() - t


def _field_values(n, seed=0):
    """Values of every vc_ field an analysis writes, shaped like a real run's."""
    rng = np.random.default_rng(seed)
    cols = {f"vc_cluster_{lv}": rng.integers(0, c, n).tolist()
            for lv, c in zip(range(1, 6), (4, 12, 36, n // 50, n // 10))}
    dup = rng.random(n) < 0.03
    cols["vc_dup_group"] = [f"{i:024x}" if d else None for i, d in enumerate(dup)]
    cols["vc_duplicate"] = (dup & (rng.random(n) < 0.5)).tolist()
    for f in ("vc_uniqueness", "vc_mislabel", "vc_outlier", "vc_blur", "vc_dark", "vc_bright"):
        cols[f] = rng.random(n).round(6).tolist()
    cols["vc_suggested_label"] = [f"class{c}" for c in rng.integers(0, 10, n)]
    cols["vc_issues"] = [["duplicate"] if d else [] for d in cols["vc_duplicate"]]
    return cols


def worker_fields(n, out, compare=True):
    """Child process: commit every vc_ field on the ``n``-sample dataset, twice (new fields,
    then a re-run over them), then (``compare``) FiftyOne's own bulk ``set_values`` of one
    field for scale."""
    import fiftyone as fo

    from visual_curation.core import fields as vcf
    from visual_curation.core.analyze import DESCRIPTIONS, FIELD_TYPES

    ds = fo.load_dataset(FIELDS_DATASET.format(n=n))
    ours = [f for f in ds.get_field_schema() if f.startswith("vc_")]
    if ours:
        ds.delete_sample_fields(ours)
    res = dict(n=n, steps={}, rss_gb={})
    with RssSampler() as rs:
        rs.mark("values")
        cols = _field_values(n)
        for step in ("commit 15 fields (new)", "commit 15 fields (re-run)"):
            rs.mark(step)
            t = time.perf_counter()
            vcf.set_sample_values(ds, cols, descriptions=DESCRIPTIONS, types=FIELD_TYPES,
                                  overwrite=True)
            res["steps"][step] = time.perf_counter() - t
        if compare:
            rs.mark("FiftyOne set_values, 1 field")
            t = time.perf_counter()
            ds.set_values("vc_bench_fo_uniqueness", cols["vc_uniqueness"])
            res["steps"]["FiftyOne set_values, 1 field"] = time.perf_counter() - t
        rs.mark("done")
    check = ds.take(1000, seed=1).values(["id", "vc_uniqueness", "vc_cluster_4"])
    res["spot_check_ok"] = all(u is not None and c is not None for _, u, c in zip(*check))
    ds.delete_sample_fields([f for f in ds.get_field_schema() if f.startswith("vc_")])
    res["peak_rss_gb"] = rs.peak / 2**30
    res["rss_gb"] = {k: v / 2**30 for k, v in rs.by_step.items()}
    Path(out).write_text(json.dumps(res, indent=1))


def run_fields(n=1_000_000, compare=True):
    _, build_s = build_fields_dataset(n)
    out = WORK / f"scale-fields-{n}.json"
    subprocess.run([sys.executable, __file__, "--n", str(n), "--out",
                    str(out)] + ([] if compare else ["--no-compare"]), check=True,
                   env=dict(os.environ))
    res = json.loads(out.read_text())
    res["build_s"] = build_s
    return res


def fields_table(r):
    rows = "\n".join(f"| {k} | {v:.1f} | {r['rss_gb'].get(k, 0):.2f} |"
                     for k, v in r["steps"].items())
    per_field = r["steps"]["commit 15 fields (new)"] / 15
    return (
        f"A FiftyOne dataset of {r['n']:,} image samples in MongoDB; the 15 `vc_` fields of an "
        f"analysis (values shaped like a real run's) committed by `set_sample_values`: every "
        f"row staged, then one server-side `$merge`. Measured in a child process (RSS sampled "
        f"every 0.2 s; it includes the Python lists of all values, as an analysis holds them)."
        f"\n\n| step | s | peak RSS during step (GiB) |\n|---|---|---|\n{rows}\n\n"
        f"Our commit: {per_field:.1f} s per field; FiftyOne's own bulk `set_values`: "
        f"{r['steps']['FiftyOne set_values, 1 field']:.1f} s for one field. Peak RSS "
        f"{r['peak_rss_gb']:.2f} GiB. Spot check of 1,000 samples after the commit: "
        f"{'every field set' if r['spot_check_ok'] else 'MISSING VALUES'}.\n")


def fields_growth_table(small, large, target=10_000_000):
    """The commit's growth from two sizes, as ``t = a N^b`` and RSS linear in N, extrapolated
    to ``target`` samples."""
    import math

    key = "commit 15 fields (new)"
    n1, n2 = small["n"], large["n"]
    t1, t2 = small["steps"][key], large["steps"][key]
    b = math.log(t2 / t1) / math.log(n2 / n1)
    t_target = t2 * (target / n2) ** b
    m1, m2 = small["rss_gb"][key], large["rss_gb"][key]   # the commit's own peak
    slope = (m2 - m1) / (n2 - n1)
    m_target = m2 + slope * (target - n2)
    rows = "\n".join(
        f"| {r['n']:,} | {r['steps'][key]:.1f} | {r['steps']['commit 15 fields (re-run)']:.1f} "
        f"| {r['rss_gb'][key]:.2f} |" for r in (small, large))
    return (f"\n### Growth\n\n| samples | commit 15 fields, new (s) | re-run (s) | "
            f"peak RSS during the commit (GiB) |"
            f"\n|---|---|---|---|\n{rows}\n| {target:,} (extrapolated) | {t_target:.0f} | | "
            f"{m_target:.1f} |\n\nFit on the two measured sizes: time grows as N^{b:.2f} "
            f"(t = {t2:.0f} s x (N / {n2:,})^{b:.2f}), peak RSS linearly "
            f"({slope * 1e6 * 1024:.0f} MiB per million samples; at {n2:,} the value lists an "
            f"analysis holds take {large['rss_gb']['values'] - large['rss_gb']['start']:.2f} "
            f"GiB of it, the RSS after building them). At {target:,} samples: about "
            f"{t_target / 60:.0f} "
            f"min and {m_target:.1f} GiB, extrapolated, not measured.\n")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--out", required=True)
    ap.add_argument("--no-compare", action="store_true")
    a = ap.parse_args(argv)
    worker_fields(a.n, a.out, compare=not a.no_compare)


if __name__ == "__main__":
    main()
