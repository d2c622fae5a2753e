"""The in-process engine of ``compute_embeddings`` (``engine="local"``), and the work units
and per-file reading that every engine shares.

On a GPU the next images are decoded in threads while the model runs; on CPU the images of a
wave are decoded in forked processes on all cores, then the wave's batches run on all cores.
Rows are committed to LanceDB every ``write_every`` items, so an interrupted run resumes where
it stopped.
"""
from __future__ import annotations

import itertools
import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from . import images as vci


@dataclass
class Unit:
    """One file to read: a whole image, or the boxes of one sample's detections."""
    sample_id: str
    filepath: str
    fingerprint: str | None
    items: list = field(default_factory=list)  # [(item id, box or None, previous content hash)]



#: below this many images to embed on CPU, decoding runs in threads rather than forked processes
PROCESS_MIN_ITEMS = 256
_JOB = None  # (prepare, padding, min_box_size), inherited by forked decoding workers


def _prepare_job(unit):
    return prepare_unit(unit, *_JOB)


def prepare_unit(unit, prepare, padding, min_box_size):
    """Reads one file once; returns a list of per-item outcomes (runs in a decoding worker)."""
    out = []
    try:
        data = vci.read_bytes(unit.filepath)
        chash = vci.content_hash(data)
        im = None
        for item_id, box, prev_hash, fp in unit.items:
            if prev_hash is not None and prev_hash == chash and box is None:
                out.append(("same", item_id, fp, chash))
                continue
            if im is None:
                im = vci.decode(data)
                orig = im.info.get("vc_size", im.size)
            try:
                if box is not None:
                    bw, bh = box[2] * orig[0], box[3] * orig[1]
                    if min(bw, bh) < min_box_size:
                        out.append(("skip", item_id, f"box too small to embed "
                                    f"({bw:.0f}x{bh:.0f} px < {min_box_size} px)"))
                        continue
                    crop = vci.crop_relative(im, box, padding)
                else:
                    crop = im
                out.append(("ok", item_id, prepare(crop), fp, chash, orig, box))
            except vci.ImageError as e:
                out.append(("skip", item_id, str(e)))
    except vci.ImageError as e:
        out = [("error", it[0], str(e)) for it in unit.items]
    except Exception as e:  # noqa: BLE001 - one bad file never stops the run
        out = [("error", it[0], f"unexpected {type(e).__name__}: {e}") for it in unit.items]
    return unit, out



def embed_units(units, *, lm, store, existing, summary, batch_size=32, num_workers=None,
                padding=0.1, min_box_size=8, write_every=1024, progress=None,
                iters_str="images", start_msg=""):
    """Embeds ``units`` with the loaded model ``lm`` into ``store`` (rows of ids in
    ``existing`` are replaced, others appended); counts go to ``summary``. Returns
    ``(errors by sample id, skip reasons by item id, ids of samples read)``."""
    import fiftyone.core.utils as fou

    global _JOB
    n_todo = sum(len(u.items) for u in units)
    errors, skipped, ok_samples = {}, {}, set()
    buf = {k: [] for k in ("id", "sample_id", "filepath", "fingerprint", "content_hash",
                           "width", "height", "box", "vector")}
    same_ids, same_fps = [], []
    pending_t, pending_meta = [], []

    def run_batch():
        if not pending_t:
            return
        vecs = lm.embed_tensors(lm.collate(pending_t))
        for (item_id, sid, path, fp, chash, size, box), v in zip(pending_meta, vecs):
            buf["id"].append(item_id); buf["sample_id"].append(sid); buf["filepath"].append(path)
            buf["fingerprint"].append(fp); buf["content_hash"].append(chash)
            buf["width"].append(int(size[0])); buf["height"].append(int(size[1]))
            buf["box"].append(box); buf["vector"].append(v)
        summary.embedded += len(pending_t)
        pending_t.clear(); pending_meta.clear()

    def flush():
        if buf["id"]:
            # rows of new items are plain appends; changed items replace their row by id
            known = [i in existing for i in buf["id"]]
            for write, want in ((store.append, False), (store.upsert, True)):
                sel = [j for j, k in enumerate(known) if k == want]
                if sel:
                    write({k: (np.stack([v[j] for j in sel]) if k == "vector"
                               else [v[j] for j in sel]) for k, v in buf.items()})
            for v in buf.values():
                v.clear()
        if same_ids:
            store.set_fingerprints(same_ids, same_fps)
            summary.touched += len(same_ids)
            same_ids.clear(); same_fps.clear()

    workers = num_workers or max(1, os.cpu_count() or 1)
    # On a GPU the next images are decoded while the model runs. On CPU both would compete for
    # the same cores, and the model's intra-op threads stall whenever a decoding thread takes
    # one of them; so the images of one batch are decoded on all cores, then the batch runs on
    # all cores.
    ahead = 1 if str(lm.device).startswith("cpu") else max(2, 2 * workers)

    # On CPU a wave spans several batches: each switch between decoding and the model costs
    # the time the model's idle threads keep spinning before they yield their cores.
    wave_size = batch_size if ahead > 1 else max(batch_size, 256)

    def waves():
        wave, n = [], 0
        for u in units:
            wave.append(u)
            n += len(u.items)
            if n >= wave_size:
                yield wave
                wave, n = [], 0
        if wave:
            yield wave

    # Forked processes decode in parallel on CPU where the model's fast path hands them plain
    # arrays (per-image Python work in PIL holds the GIL, so threads give about one core).
    procs = None
    if ahead == 1 and lm.fast and n_todo >= PROCESS_MIN_ITEMS:
        _JOB = (lm.prepare, padding, min_box_size)
        procs = vci.fork_pool(workers)
    try:
        done = 0
        with fou.ProgressBar(total=n_todo, progress=progress,
                             iters_str=iters_str, start_msg=start_msg) as pb, \
                ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vc-decode") as pool:
            def submit(wave):
                if procs is not None:
                    return [procs.map_async(_prepare_job, wave,
                                            chunksize=max(1, -(-len(wave) // workers)))]
                return [pool.submit(prepare_unit, u, lm.prepare, padding, min_box_size) for u in wave]

            def collect(futures):
                if procs is not None:
                    return futures[0].get()
                return [f.result() for f in futures]

            it = waves()
            queue = deque(submit(w) for w in itertools.islice(it, ahead))
            while queue:
                results = collect(queue.popleft())
                if ahead > 1 and (nxt := next(it, None)) is not None:
                    queue.append(submit(nxt))
                for unit, outcomes in results:
                    for o in outcomes:
                        status, item_id = o[0], o[1]
                        if status == "ok":
                            _, _, prepared, fp, chash, size, box = o
                            pending_t.append(prepared)
                            pending_meta.append((item_id, unit.sample_id, unit.filepath, fp, chash,
                                                 size, box))
                            ok_samples.add(unit.sample_id)
                            if len(pending_t) >= batch_size:
                                run_batch()
                        elif status == "same":
                            same_ids.append(item_id); same_fps.append(o[2])
                            ok_samples.add(unit.sample_id)
                        elif status == "skip":
                            skipped[item_id] = o[2]
                        else:
                            errors[unit.sample_id] = o[2]
                    done += len(outcomes)
                pb.set_iteration(done)
                if len(buf["id"]) >= write_every or len(same_ids) >= write_every:
                    flush()
                if ahead == 1 and (nxt := next(it, None)) is not None:
                    queue.append(submit(nxt))
            run_batch()
            flush()
    finally:
        if procs is not None:
            procs.terminate()
            procs.join()
            _JOB = None

    return errors, skipped, ok_samples
