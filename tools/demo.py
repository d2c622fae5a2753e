"""The demo: a persistent FiftyOne dataset of real images with planted issues, every analysis run
on it with the offline demo model, and the App serving it with the plugin loaded.

    make demo                       # build/refresh, analyse, serve http://127.0.0.1:5151
    make demo ARGS=--no-launch      # the same without starting the App (exits when done)
    make demo ARGS="--fresh --n 2000"

The images come from Debian's dataset-fashion-mnist through the project's own builder
(tools/planted_sets.py): ~1,000 clean images plus planted near-duplicates, flipped labels, foreign
images (Tux Paint clip art) and blurred/dark/bright copies, so every feature has something to show.
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
os.environ.setdefault("FIFTYONE_DATABASE_VALIDATION", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
DATASET = "visual-curation-demo"


def build_images(out, n, seed):
    from tools.planted_sets import build_set

    if not (out / "truth.json").exists():
        print(f"Building {n} Fashion-MNIST images with planted issues in {out} ...", flush=True)
    build_set(out, source="fmnist", n=n, seed=seed, defects=0.03)


def build_dataset(data_dir, fresh):
    import fiftyone as fo

    if fo.dataset_exists(DATASET):
        if not fresh:
            return fo.load_dataset(DATASET)
        fo.delete_dataset(DATASET)
    ds = fo.Dataset.from_dir(dataset_dir=str(data_dir),
                             dataset_type=fo.types.FiftyOneImageClassificationDataset,
                             name=DATASET, label_field="ground_truth")
    ds.persistent = True
    truth = json.loads((data_dir / "truth.json").read_text())
    kinds = []
    for p in ds.values("filepath"):
        t = truth.get(Path(p).name, {})
        kinds.append(("outlier" if t.get("outlier") else t.get("defect") or
                      ("near-duplicate" if t.get("dup_of") else
                       "wrong label" if t.get("mislabeled") else "clean")))
    ds.set_values("planted", kinds)  # what the demo planted, to compare with vc_issues
    ds.compute_metadata()
    return ds


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--no-launch", action="store_true", help="don't start the App; exit when done")
    ap.add_argument("--fresh", action="store_true", help="rebuild the dataset from scratch")
    ap.add_argument("--n", type=int, default=1000, help="clean images (planted ones come on top)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--port", type=int, default=5151)
    ap.add_argument("--address", default="127.0.0.1")
    ap.add_argument("--data-dir", default=None, help="where the image files go")
    a = ap.parse_args()

    import fiftyone as fo

    import visual_curation as vc

    data_dir = Path(a.data_dir or os.path.join(
        os.path.expanduser("~"), ".fiftyone", "visual_curation", f"demo-images-{a.n}-{a.seed}"))
    build_images(data_dir, a.n, a.seed)
    ds = build_dataset(data_dir, a.fresh)
    t0 = time.time()
    emb = vc.compute_embeddings(ds, model="demo", pretrained=None)
    print(f"Embeddings: {emb}")
    summary = vc.analyze(ds, label_field="ground_truth")
    issues = ", ".join(f"{k} {v}" for k, v in (summary.get("issues") or {}).items())
    print(f"Analysed {summary.get('items')} samples in {time.time() - t0:.1f} s. Flagged: "
          f"{issues or 'nothing'}.")
    url = f"http://{a.address}:{a.port}/datasets/{DATASET}"
    if a.no_launch:
        print(f"\nDataset {DATASET!r} is ready ({len(ds)} samples). `make demo` serves it at "
              f"{url}.")
        return
    session = fo.launch_app(ds, address=a.address, port=a.port, auto=False)
    print(NEXT.format(url=url, n=len(ds)), flush=True)
    try:
        session.wait(-1)
    except KeyboardInterrupt:
        pass


NEXT = """
The App is serving {n} demo samples at {url}

Three things to try:
  1. Click "+" next to the Samples tab, open "Visual Curation: clusters", and move the
     granularity knob: one card per cluster, "Largest first".
  2. In the sidebar, filter vc_issues by "duplicate" or "mislabel" (the "planted" field says
     what the demo planted, for comparison).
  3. Press ` (backtick), run "Visual Curation: text search", and type "a photo of a sneaker".

Ctrl-C stops the App."""


if __name__ == "__main__":
    main()
