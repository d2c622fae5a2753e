"""``visual-curation``: the engine from the command line.

    visual-curation embed my-dataset --model demo
    visual-curation analyze my-dataset --label-field ground_truth
    visual-curation search my-dataset --text "a photo of a sneaker" -k 10
    visual-curation delete my-dataset
    visual-curation plugin install        # make this package a FiftyOne App plugin
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from .analyzers import ANALYSES

PLUGIN_LINK = "visual-curation"  # the name of the link ``plugin install`` makes


def _load(name):
    import fiftyone as fo

    if not fo.dataset_exists(name):
        sys.exit(f"No dataset named {name!r} (fiftyone datasets list)")
    return fo.load_dataset(name)


def package_dir():
    """The installed package folder: the FiftyOne plugin (it holds ``fiftyone.yml``)."""
    return Path(__file__).resolve().parents[1]


def _plugins_dir(requested):
    """(folder, hint): the plugins folder to use, and what to set so FiftyOne reads it."""
    import fiftyone as fo

    configured = fo.config.plugins_dir
    if requested:
        folder = Path(requested).expanduser().resolve()
        same = configured and Path(configured).expanduser().resolve() == folder
        return folder, None if same else folder
    if configured:
        return Path(configured).expanduser(), None
    return Path.home() / "fiftyone" / "__plugins__", Path.home() / "fiftyone" / "__plugins__"


def plugin(action, plugins_dir=None):
    """``plugin install|uninstall|path``: link this package into FiftyOne's plugins folder."""
    src = package_dir()
    if action == "path":
        print(src)
        return
    if not (src / "fiftyone.yml").is_file():
        sys.exit(f"error: no fiftyone.yml in {src}: this package was not installed with its "
                 "plugin metadata")
    folder, hint = _plugins_dir(plugins_dir)
    link = folder / PLUGIN_LINK
    if action == "uninstall":
        if link.is_symlink():
            link.unlink()
            print(f"Removed {link}")
        else:
            print(f"Nothing to remove: no link {link}")
        return
    if link.is_symlink() and link.resolve() == src:
        print(f"Already installed: {link} -> {src}")
    elif link.exists() and not link.is_symlink():
        sys.exit(f"error: {link} exists and is not a link; move it away first")
    else:
        folder.mkdir(parents=True, exist_ok=True)
        if link.is_symlink():
            print(f"Replacing {link} -> {os.readlink(link)}")
            link.unlink()
        link.symlink_to(src, target_is_directory=True)
        print(f"Linked {link} -> {src}")
    downloaded = folder / "@visual-curation" / "curation"
    if downloaded.is_dir() and not downloaded.is_symlink():
        print(f"Note: {downloaded} (from `fiftyone plugins download`) holds another copy of "
              "this plugin and FiftyOne loads only one: remove that folder to use this one")
    if hint:
        print(f"FiftyOne does not read {hint} yet: set FIFTYONE_PLUGINS_DIR={hint} "
              f'(or "plugins_dir": "{hint}" in ~/.fiftyone/config.json)')
    print("Check with: fiftyone plugins list")


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
    e.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="embed in this process, or on a Ray cluster (the [ray] extra)")
    e.add_argument("--ray-address", default=None,
                   help="the Ray cluster (ray://host:10001, auto); default: a local Ray")
    e.add_argument("--workers", type=int, default=None,
                   help="decoding threads (local) or Ray actors (ray)")
    a = sub.add_parser("analyze", help="run analyses and write vc_ fields")
    a.add_argument("dataset")
    a.add_argument("--label-field", default=None)
    a.add_argument("--patches-field", default=None)
    a.add_argument("--analyses", default=None,
                   help="comma-separated subset of: " + ", ".join(ANALYSES))
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
    p = sub.add_parser("plugin", help="link this package into FiftyOne's plugins folder")
    p.add_argument("action", choices=["install", "uninstall", "path"],
                   help="install/uninstall the link, or print the package (plugin) folder")
    p.add_argument("--plugins-dir", default=None,
                   help="default: fo.config.plugins_dir (FIFTYONE_PLUGINS_DIR)")
    args = ap.parse_args(argv)
    if args.cmd == "plugin":
        return plugin(args.action, args.plugins_dir)
    # our own messages, once each (a root handler would print every library's INFO records,
    # FiftyOne's progress bars among them, a second time)
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    log = logging.getLogger("visual_curation")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False

    import visual_curation as vc
    from visual_curation.core.similarity import similar_ids

    ds = _load(args.dataset)
    try:
        if args.cmd == "embed":
            r = vc.compute_embeddings(ds, model=args.model, pretrained=args.pretrained,
                                      patches_field=args.patches_field,
                                      embeddings_field=args.embeddings_field,
                                      batch_size=args.batch_size, device=args.device,
                                      engine=args.engine, ray_address=args.ray_address,
                                      num_workers=args.workers)
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
