#!/usr/bin/env python3
"""Adding 1 % to a similarity index of ``--n`` vectors: our LanceDB table (what
``compute_embeddings`` does with new items: one append commit, compacted only once small fragments
pile up; and the
Brain API's ``add_to_index`` on our index: one merge-insert by id) against FiftyOne Brain's own
LanceDB backend on the same vectors (its ``add_to_index`` reads the whole table back and writes
it again). Vectors: the scale bench's synthetic 512-d generator (seeded); no ANN index on
either table (the same for both).

    python bench/brain_index.py [--n 1000000] [--share 0.01]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
for p in (str(REPO), str(BENCH)):
    if p not in sys.path:
        sys.path.insert(0, p)


def _vectors(n, seed):
    from scale import synth_blocks

    out = np.empty((n, 512), np.float32)
    for start, vecs, *_ in synth_blocks(n, seed=seed):
        out[start:start + len(vecs)] = vecs
    return out


def _rss_gib():
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def run(n=1_000_000, share=0.01, seed=0):
    import fiftyone as fo
    from fiftyone.brain.internal.core.lancedb import (LanceDBSimilarityConfig,
                                                      LanceDBSimilarityIndex)

    from visual_curation.core.brain_index import (VisualCurationSimilarityConfig,
                                                  VisualCurationSimilarityIndex)
    from visual_curation.core.store import VectorStore

    m = max(1, int(round(n * share)))
    vecs = _vectors(n + m, seed)
    ids = [f"{i:024x}" for i in range(n + m)]
    base, extra = slice(0, n), slice(n, n + m)
    tmp = tempfile.mkdtemp(prefix="vc-bench-brain-")
    r = dict(n=n, added=m, seed=seed)

    name = "vc-bench-brain-index"
    if fo.dataset_exists(name):
        fo.delete_dataset(name)
    ds = fo.Dataset(name)            # the indexes need a collection; nothing is read from it
    ds.add_sample(fo.Sample(filepath="/nonexistent.png"))
    try:
        # ours: the table as compute_embeddings writes it (blocks of committed rows)
        store = VectorStore("bench_ours", uri=tmp)
        store.create(512)
        t = time.perf_counter()
        for s in range(0, n, 50_000):
            e = min(s + 50_000, n)
            store.append({"id": ids[s:e], "vector": vecs[s:e]})
        store.compact(min_small_fragments=0)   # the end of a first run: one compaction
        r["ours_build_s"] = time.perf_counter() - t
        t = time.perf_counter()
        store.append({"id": ids[extra], "vector": vecs[extra]})
        store.compact()          # as compute_embeddings: compacts only when fragments pile up
        r["ours_append_s"] = time.perf_counter() - t
        store.delete(ids[extra])
        store.compact(min_small_fragments=0)
        idx = VisualCurationSimilarityIndex(
            ds, VisualCurationSimilarityConfig(table_name="bench_ours", uri=tmp), None)
        t = time.perf_counter()
        idx.add_to_index(vecs[extra], ids[extra], reload=False)
        r["ours_add_to_index_s"] = time.perf_counter() - t
        r["ours_rows"] = store.count()

        # the Brain's LanceDB backend on the same vectors
        conf = LanceDBSimilarityConfig(table_name="bench_brain", uri=tmp)
        bidx = LanceDBSimilarityIndex(ds, conf, None)
        t = time.perf_counter()
        bidx.add_to_index(vecs[base], ids[base], reload=False)
        r["brain_build_s"] = time.perf_counter() - t
        t = time.perf_counter()
        bidx.add_to_index(vecs[extra], ids[extra], reload=False)
        r["brain_add_to_index_s"] = time.perf_counter() - t
        r["brain_rows"] = len(bidx.table)
        r["peak_rss_gib"] = _rss_gib()
    finally:
        ds.delete()
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return r


def table(r):
    ratio = r["brain_add_to_index_s"] / max(r["ours_append_s"], 1e-9)
    lines = [
        f"{r['n']:,} synthetic 512-d vectors (seed {r['seed']}), then {r['added']:,} more "
        "(1 %) added. Ours: the table as `compute_embeddings` keeps it, and our Brain index "
        "(`vc_<model>`) reads it live. Brain: FiftyOne Brain's LanceDB similarity backend. "
        "Same vectors, same machine, same run; no ANN index on either table.",
        "",
        "| step | ours (s) | Brain LanceDB backend (s) |",
        "|---|---|---|",
        f"| build the index ({r['n']:,} rows) | {r['ours_build_s']:.1f} (appends of 50k, then compaction) | "
        f"{r['brain_build_s']:.1f} |",
        f"| add 1 % ({r['added']:,} rows) | {r['ours_append_s']:.2f} (one append commit, as "
        f"compute_embeddings) | {r['brain_add_to_index_s']:.1f} (table read and rewritten) |",
        f"| add 1 % through the Brain API `add_to_index` | {r['ours_add_to_index_s']:.2f} "
        "(merge-insert by id) | (the row above) |",
        "",
        f"Adding 1 %: ours is {ratio:.0f}x faster than the Brain's LanceDB backend "
        f"(rows after: ours {r['ours_rows']:,}, Brain {r['brain_rows']:,}). Peak RSS of the "
        f"process: {r['peak_rss_gib']:.1f} GiB (the vectors held in memory for both).",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--share", type=float, default=0.01)
    a = ap.parse_args()
    print(table(run(a.n, a.share)))
