"""Embedding on Ray against the in-process engine, on the same images in the same run.

Three timings of ``compute_embeddings`` into a fresh table, same model, same batch size:
in-process (``engine="local"``), on a Ray started by the call (``engine="ray"``,
``ray_address=None``: Ray's start-up, the actors' model loads, the work and the commit), and on
a Ray already running (the call joins it: what a user with a cluster pays). Plus the per-image
costs a capacity plan needs: one core's decode time per image on two image sets, and the
model's forward rate here."""
import os
import time

import numpy as np


def _dataset(folder, name, n):
    import fiftyone as fo

    if fo.dataset_exists(name):
        fo.delete_dataset(name)
    ds = fo.Dataset.from_dir(dataset_dir=str(folder),
                             dataset_type=fo.types.FiftyOneImageClassificationDataset,
                             name=name, label_field="ground_truth")
    keep = ds.take(min(n, len(ds)), seed=0).values("id")
    ds.delete_samples(ds.exclude(keep))
    return ds


def _timed(ds, **kw):
    """Seconds and summary of one ``compute_embeddings`` into a fresh table."""
    import visual_curation as vc
    from visual_curation.core import store as vcs

    vcs.VectorStore.for_dataset(ds._dataset, "demo").drop()
    t = time.perf_counter()
    r = vc.compute_embeddings(ds, model="demo", progress=False, **kw)
    return time.perf_counter() - t, r


def run(fmnist_folder, stamps_folder, n=5000):
    import ray

    import bench_embeddings as be
    from visual_curation.core.models import load_model

    ds = _dataset(fmnist_folder, "vc-bench-ray", n)
    try:
        ids = ds.values("id")
        t_local, r_local = _timed(ds)
        from visual_curation.core import store as vcs

        _, want, _ = vcs.VectorStore.for_dataset(ds, "demo").vectors(ids)
        t_cold, r_cold = _timed(ds, engine="ray")
        t = time.perf_counter()
        ray.init(include_dashboard=False, log_to_driver=False)
        t_start = time.perf_counter() - t
        try:
            t_warm, r_warm = _timed(ds, engine="ray")
            t_warm2, r_warm2 = _timed(ds, engine="ray")
            got_ids, got, _ = vcs.VectorStore.for_dataset(ds, "demo").vectors(ids)
        finally:
            ray.shutdown()
        diff = float(np.abs(got - want).max()) if got_ids == ids else float("nan")
        lm = load_model("demo")
        paths = ds.values("filepath")
        decode_fm = be.decode_cost(lm, paths[:1000])
        stamp_paths = _stamp_paths(stamps_folder, 500)
        decode_st = be.decode_cost(lm, stamp_paths)
        import visual_curation.core.images as vci

        tensors = [lm.preprocess(vci.load_image(p)[0]) for p in paths[:1024]]
        fwd = be.forward_ceiling(lm, tensors, 32, repeats=2)
        best = min(((t_warm, r_warm), (t_warm2, r_warm2)), key=lambda x: x[0])
        warm, busy, workers = best[0], best[1].busy_seconds, best[1].workers
        return dict(n=len(ids), local=t_local, cold=t_cold, ray_start=t_start, warm=warm,
                    busy=busy, workers=workers, embedded=(r_local.embedded, r_cold.embedded,
                                                         r_warm.embedded),
                    diff=diff, decode_fm_ms=decode_fm * 1e3, decode_st_ms=decode_st * 1e3,
                    forward_ips=fwd, cores=os.cpu_count() or 1)
    finally:
        import visual_curation as vc

        vc.delete_run(ds)
        ds.delete()


def _stamp_paths(folder, n):
    from pathlib import Path

    paths = sorted(str(p) for p in Path(folder).rglob("*")
                   if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp"))
    rng = np.random.default_rng(0)
    return [paths[i] for i in rng.choice(len(paths), min(n, len(paths)), replace=False)]


def plan(decode_ms, gpu_ips, gpus, cores_per_gpu, n):
    """Hours for ``n`` images on ``gpus`` GPU workers: each worker is bound by its GPU's forward
    rate or by its CPU cores decoding, whichever is slower."""
    per_worker = min(gpu_ips, cores_per_gpu / (decode_ms / 1e3))
    return n / (gpus * per_worker) / 3600, per_worker


def table(r, gpu_ips=1000.0, cores_per_gpu=8):
    n = r["n"]
    rows = [
        "| engine | wall (s) | images/s | vs in-process |",
        "|---|---|---|---|",
        f"| in-process (`engine=\"local\"`) | {r['local']:.1f} | {n / r['local']:.0f} | 1.00x |",
        f"| Ray started by the call (`engine=\"ray\"`) | {r['cold']:.1f} | {n / r['cold']:.0f} "
        f"| {r['cold'] / r['local']:.2f}x |",
        f"| Ray already running (the call joins it) | {r['warm']:.1f} | {n / r['warm']:.0f} | "
        f"{r['warm'] / r['local']:.2f}x |",
    ]
    out = (f"{n:,} planted_sets fmnist images (112x112 PNG/JPEG/WebP), the demo model, batch "
           f"32, a fresh table each time; {r['cores']} CPU cores, so Ray runs {r['cores']} "
           "single-core actors where the in-process engine decodes in forked workers and runs "
           "the model on all cores. Embedded per run: "
           f"{' / '.join(str(e) for e in r['embedded'])}; largest difference between the Ray "
           f"and the in-process vectors: {r['diff']:.1e}. Starting Ray alone (`ray.init()` on "
           f"this machine) took {r['ray_start']:.1f} s.\n\n" + "\n".join(rows))
    busy, workers = r["busy"], r["workers"]
    steady = n / (busy / workers)
    out += (f"\n\nWhere the Ray call's time goes (running Ray, best of two): the {workers} actors "
            f"were busy reading, embedding and writing for {busy:.1f} s in all, i.e. "
            f"{steady:.0f} images/s while working; the remaining "
            f"{r['warm'] - busy / workers:.1f} s of the {r['warm']:.1f} s are the fixed cost of "
            "a call (each actor starts, imports the package and loads the model; the driver "
            "reads FiftyOne and commits once), which does not grow with the number of images.")
    out += (f"\n\nPer-image costs measured here: decoding (read, hash, decode, resize; one core) "
            f"{r['decode_fm_ms']:.2f} ms for the 112-px fmnist images and "
            f"{r['decode_st_ms']:.2f} ms for the Tux Paint stamps (colour PNGs up to ~500 px); "
            f"the demo model's forward pass {r['forward_ips']:.0f} images/s on "
            f"{r['cores']} cores.\n\n")
    out += (f"On paper, a Ray cluster of GPU workers, each with {cores_per_gpu} CPU cores "
            f"decoding: a worker embeds min(GPU forward rate, {cores_per_gpu} / decode time) "
            f"images/s. The GPU forward rate is not measured here (no GPU on this machine); the "
            f"table takes {gpu_ips:.0f} images/s per GPU (ViT-B-32 class). Decoding at the "
            f"stamps' {r['decode_st_ms']:.2f} ms/image, {cores_per_gpu} cores feed "
            f"{cores_per_gpu / (r['decode_st_ms'] / 1e3):.0f} images/s. GPU-hours = images / "
            "rate / 3600 per GPU, the same at any GPU count; wall time shrinks with GPUs, plus "
            f"the start-up and one commit measured above.\n\n"
            "| images | GPUs | images/s per worker | wall time | GPU-hours |\n|---|---|---|---|---|")
    for n_img, gpus in ((10_000_000, 4), (10_000_000, 16), (100_000_000, 16),
                        (100_000_000, 64), (1_000_000_000, 64), (1_000_000_000, 256)):
        hours, per = plan(r["decode_st_ms"], gpu_ips, gpus, cores_per_gpu, n_img)
        wall = f"{hours:.1f} h" if hours >= 1 else f"{hours * 60:.0f} min"
        out += f"\n| {n_img:,} | {gpus} | {per:.0f} | {wall} | {hours * gpus:,.0f} |"
    return out
