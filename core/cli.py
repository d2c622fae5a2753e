"""``visual-curation``: the engine from the command line.

    visual-curation embed my-dataset --model demo
    visual-curation analyze my-dataset --label-field ground_truth
    visual-curation search my-dataset --text "a photo of a sneaker" -k 10
    visual-curation delete my-dataset
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys


def _load(name):
    import fiftyone as fo

    if not fo.dataset_exists(name):
        sys.exit(f"No dataset named {name!r} (fiftyone datasets list)")
    return fo.load_dataset(name)


def main(argv=None):
    os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
    ap = argparse.ArgumentParser(prog="visual-curation", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("embed", help="compute embeddings into LanceDB (incremental)")
    e.add_argument("dataset")
    e.add_argument("--model", default="ViT-B-32")
    e.add_argument("--pretrained", default="laion2b_s34b_b79k",
                   help="open_clip tag or checkpoint path")
    e.add_argument("--patches-field", default=None)
    e.add_argument("--embeddings-field", default=None)
    e.add_argument("--batch-size", type=int, default=32)
    e.add_argument("--device", default="auto")
    a = sub.add_parser("analyze", help="run analyses and write vc_ fields")
    a.add_argument("dataset")
    a.add_argument("--label-field", default=None)
    a.add_argument("--patches-field", default=None)
    a.add_argument("--analyses", default=None, help="comma-separated subset")
    a.add_argument("--force", action="store_true")
    s = sub.add_parser("search", help="print the nearest samples to a text/image/sample")
    s.add_argument("dataset")
    g = s.add_mutually_exclusive_group(required=True)
    g.add_argument("--text")
    g.add_argument("--image")
    g.add_argument("--sample-id")
    s.add_argument("-k", type=int, default=10)
    d = sub.add_parser("delete", help="remove our fields, runs and LanceDB tables")
    d.add_argument("dataset")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    import visual_curation as vc
    from visual_curation.core.similarity import similar_ids

    ds = _load(args.dataset)
    try:
        if args.cmd == "embed":
            r = vc.compute_embeddings(ds, model=args.model, pretrained=args.pretrained,
                                      patches_field=args.patches_field,
                                      embeddings_field=args.embeddings_field,
                                      batch_size=args.batch_size, device=args.device)
            print(r)
        elif args.cmd == "analyze":
            r = vc.analyze(ds, label_field=args.label_field, patches_field=args.patches_field,
                           analyses=args.analyses.split(",") if args.analyses else None,
                           force=args.force)
            print(json.dumps(r, indent=1, default=str))
        elif args.cmd == "search":
            hits = similar_ids(ds, text=args.text, image=args.image, sample_id=args.sample_id,
                               k=args.k)
            paths = dict(zip(*ds.select([h[0] for h in hits]).values(["id", "filepath"])))
            for i, dist in hits:
                print(f"{dist:.4f}  {i}  {paths.get(i, '')}")
        elif args.cmd == "delete":
            print(json.dumps(vc.delete_run(ds), indent=1))
    except (ValueError, FileNotFoundError) as err:
        sys.exit(f"error: {err}")


if __name__ == "__main__":
    main()
