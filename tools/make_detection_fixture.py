"""Builds the tiny detection fixture shipped in tests/fixtures/detections: Fashion-MNIST items
(real images) placed on 256x256 canvases, with their boxes and class labels in detections.json.
One tiny box per image exercises the "too small to embed" path.

    python tools/make_detection_fixture.py   # rewrites tests/fixtures/detections
"""
import gzip
import json
from pathlib import Path

import numpy as np
from PIL import Image

FM = Path("/usr/share/datasets/fashion-mnist")
CLASSES = ["t-shirt", "trouser", "pullover", "dress", "coat",
           "sandal", "shirt", "sneaker", "bag", "ankle boot"]
OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "detections"


def main(n_images=12, per_image=3, seed=0):
    rng = np.random.default_rng(seed)
    with gzip.open(FM / "t10k-labels-idx1-ubyte.gz") as f:
        y = np.frombuffer(f.read(), np.uint8, offset=8)
    with gzip.open(FM / "t10k-images-idx3-ubyte.gz") as f:
        x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    (OUT / "images").mkdir(parents=True, exist_ok=True)
    records = []
    for i in range(n_images):
        canvas = Image.new("RGB", (256, 256), (20, 20, 20))
        dets = []
        slots = rng.permutation(4)[:per_image]
        for s in slots:
            j = int(rng.integers(len(y)))
            size = int(rng.integers(80, 112))
            item = Image.fromarray(x[j]).resize((size, size), Image.BICUBIC).convert("RGB")
            ox, oy = (s % 2) * 128 + int(rng.integers(0, 128 - size + 1)), \
                (s // 2) * 128 + int(rng.integers(0, 128 - size + 1))
            canvas.paste(item, (ox, oy))
            dets.append({"label": CLASSES[y[j]], "bounding_box": [ox / 256, oy / 256,
                                                                  size / 256, size / 256]})
        dets.append({"label": "speck", "bounding_box": [0.97, 0.97, 0.01, 0.01]})
        name = f"scene{i:03d}.png"
        canvas.save(OUT / "images" / name)
        records.append({"filepath": f"images/{name}", "detections": dets})
    (OUT / "detections.json").write_text(json.dumps(records, indent=1))
    print(f"{OUT}: {n_images} images")


if __name__ == "__main__":
    main()
