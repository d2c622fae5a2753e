"""Embedding throughput: end-to-end ``compute_embeddings`` (decode + embed + LanceDB write, fresh
table) against the same model's pure forward throughput on pre-decoded tensors, same batch size,
same machine, same run."""
import time

import numpy as np


def forward_ceiling(lm, tensors, batch_size, repeats=1):
    import torch

    batches = [torch.stack(tensors[i:i + batch_size]) for i in range(0, len(tensors), batch_size)]
    lm.embed_tensors(batches[0])  # warm-up
    t = time.perf_counter()
    n = 0
    for _ in range(repeats):
        for b in batches:
            lm.embed_tensors(b)
            n += len(b)
    return n / (time.perf_counter() - t)


def run(folder, model, pretrained, n_images, batch_size=32, name="vc-bench-emb"):
    import fiftyone as fo

    import visual_curation as vc
    from visual_curation.core import images as vci
    from visual_curation.core.models import load_model

    if fo.dataset_exists(name):
        fo.delete_dataset(name)
    ds = fo.Dataset.from_dir(dataset_dir=str(folder),
                             dataset_type=fo.types.FiftyOneImageClassificationDataset,
                             name=name, label_field="ground_truth")
    ds = ds.take(min(n_images, len(ds)), seed=0).clone(name + "-sub")
    fo.delete_dataset(name)
    try:
        lm = load_model(model, pretrained)
        paths = ds.values("filepath")
        tensors = [lm.preprocess(vci.load_image(p)[0]) for p in paths]
        ceiling = forward_ceiling(lm, tensors, batch_size)
        t = time.perf_counter()
        r = vc.compute_embeddings(ds, model=model, pretrained=pretrained,
                                  batch_size=batch_size, progress=False)
        e2e = r.embedded / (time.perf_counter() - t)
        t = time.perf_counter()
        r2 = vc.compute_embeddings(ds, model=model, pretrained=pretrained, progress=False)
        rerun = time.perf_counter() - t
        return dict(model=lm.name, images=len(paths), batch_size=batch_size,
                    forward_ips=round(ceiling, 1), end_to_end_ips=round(e2e, 1),
                    ratio=round(e2e / ceiling, 3), rerun_seconds=round(rerun, 2),
                    rerun_embedded=r2.embedded)
    finally:
        vc.delete_run(ds)
        ds.delete()


def table(rows):
    out = ["| model | images | batch | forward only (img/s) | end-to-end (img/s) | "
           "end-to-end / forward | unchanged re-run (s) |",
           "|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r['model']} | {r['images']} | {r['batch_size']} | {r['forward_ips']} | "
                   f"{r['end_to_end_ips']} | {r['ratio']:.0%} | {r['rerun_seconds']} "
                   f"({r['rerun_embedded']} embedded) |")
    return "\n".join(out)
