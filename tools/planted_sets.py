"""Planted-truth image sets: real labeled images with known issues, for the demo, the tests and
the benchmarks.

Sources (Debian packages; ``make setup`` installs them):

- ``fmnist``: ``dataset-fashion-mnist``, 70,000 labeled clothing images (28x28, drawn at 112x112
  RGB so that crops and resizes stay meaningful), 10 classes;
- ``stamps``: ``tuxpaint-stamps-default``, ~800 labeled colour clip-art images (centred on a
  white 224x224 canvas), one class per stamp folder with at least 8 images.

Planted issues, each recorded in ``truth.json``:

- near-duplicates: copies of clean images after an everyday edit drawn from :data:`EDITS`
  (kind and strength in [0, 1] chosen per copy from the seed; ``combo`` chains two or three);
- label noise: a share of the clean images given another class (symmetric noise);
- foreign images: images of the *other* source, given a class of this one;
- quality defects: blurred, dark and over-bright copies of clean images (:data:`DEFECTS`).

Output folder: ``data/`` (the images), ``labels.json`` (FiftyOne's
``FiftyOneImageClassificationDataset`` layout, loadable with ``fo.Dataset.from_dir``) and
``truth.json`` (per file: ``true``, ``label``, ``mislabeled``, ``dup_of``, ``dup_kind``,
``edit_strength``, ``outlier``, ``defect``, ``derived_from``). ``truth.json`` is written last, so
a folder that has it is complete.

    python tools/planted_sets.py --source fmnist --n 2000 --seed 7 --out /tmp/fm2000
    python tools/planted_sets.py --source stamps --dup-edits all --strength 0.2 0.9 --out /tmp/st

From Python (the repository root on ``sys.path``)::

    from tools.planted_sets import build_set
    folder = build_set("/tmp/fm300", source="fmnist", n=300, seed=1)
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont, ImageOps

FMNIST_DIR = Path(os.environ.get("VC_FMNIST_DIR", "/usr/share/datasets/fashion-mnist"))
STAMPS_DIR = Path(os.environ.get("VC_STAMPS_DIR", "/usr/share/tuxpaint/stamps"))
FMNIST_CLASSES = ("t-shirt", "trouser", "pullover", "dress", "coat",
                  "sandal", "shirt", "sneaker", "bag", "ankle boot")
FMNIST_SIDE = 112
STAMP_CANVAS, STAMP_MAX = 224, 192


# -- sources --------------------------------------------------------------------------------

class Source:
    """Labeled images of one source: ``len(src)``, ``src.image(i)`` (RGB PIL), ``src.labels``."""

    def __init__(self, loader: Callable[[int], Image.Image], labels: list[str],
                 classes: list[str]):
        self._loader, self.labels, self.classes = loader, labels, classes

    def __len__(self) -> int:
        return len(self.labels)

    def image(self, i: int) -> Image.Image:
        return self._loader(int(i))


def _read_idx(path: Path) -> np.ndarray:
    """An IDX file (the MNIST format): magic, dims, then uint8 data."""
    with gzip.open(path) as f:
        raw = f.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * k:8 + 4 * k], "big") for k in range(ndim)]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def fmnist() -> Source:
    if not FMNIST_DIR.is_dir():
        raise SystemExit(f"Fashion-MNIST not found in {FMNIST_DIR}: "
                         "apt-get install dataset-fashion-mnist (make setup does)")
    images, labels = [], []
    for split in ("train", "t10k"):
        images.append(_read_idx(FMNIST_DIR / f"{split}-images-idx3-ubyte.gz"))
        labels.append(_read_idx(FMNIST_DIR / f"{split}-labels-idx1-ubyte.gz"))
    x, y = np.concatenate(images), np.concatenate(labels)

    def load(i):
        im = Image.fromarray(x[i], "L").resize((FMNIST_SIDE, FMNIST_SIDE), Image.BICUBIC)
        return im.convert("RGB")

    return Source(load, [FMNIST_CLASSES[k] for k in y], list(FMNIST_CLASSES))


def stamps(min_per_class: int = 8) -> Source:
    if not STAMPS_DIR.is_dir():
        raise SystemExit(f"Tux Paint stamps not found in {STAMPS_DIR}: "
                         "apt-get install tuxpaint-stamps-default (make setup does)")
    groups: dict[str, list[Path]] = {}
    for p in sorted(STAMPS_DIR.rglob("*.png")):
        if "thumb" in p.name or p.stem.endswith("_back"):
            continue
        groups.setdefault(f"{p.parent.parent.name}/{p.parent.name}", []).append(p)
    classes = sorted(c for c, ps in groups.items() if len(ps) >= min_per_class)
    files = [(p, c) for c in classes for p in groups[c]]

    def load(i):
        im = Image.open(files[i][0]).convert("RGBA")
        im.thumbnail((STAMP_MAX, STAMP_MAX))
        canvas = Image.new("RGBA", (STAMP_CANVAS, STAMP_CANVAS), (255, 255, 255, 255))
        canvas.alpha_composite(im, ((STAMP_CANVAS - im.width) // 2,
                                    (STAMP_CANVAS - im.height) // 2))
        return canvas.convert("RGB")

    return Source(load, [c for _, c in files], classes)


SOURCES: dict[str, Callable[[], Source]] = {"fmnist": fmnist, "stamps": stamps}


# -- everyday edits (near-duplicates) ---------------------------------------------------------
# Each takes (image, rng, strength in [0, 1]) and returns (image, file format). Strength 0 is the
# mildest form of the edit, 1 the strongest a person would still call "the same picture".

def _fill(im: Image.Image) -> tuple[int, ...]:
    """The colour of the image's border (what a rotation or shift uncovers)."""
    a = np.asarray(im.convert("RGB"))
    edge = np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])
    return tuple(int(v) for v in np.median(edge, axis=0))


def _sign(rng) -> int:
    return 1 if rng.random() < 0.5 else -1


def _font(size: int):
    try:
        return ImageFont.load_default(size=max(8, size))
    except TypeError:  # Pillow < 10.1: a fixed bitmap font
        return ImageFont.load_default()


_WORDS = ("summer", "sale", "new", "2024", "copy", "draft", "photo", "shop", "look", "best",
          "sample", "item", "hot", "demo", "final")


def _caption(rng, words=(1, 3)) -> str:
    return " ".join(rng.choice(_WORDS, size=int(rng.integers(words[0], words[1] + 1))))


def edit_exact(im, rng, s):
    return im.copy(), "png"


def edit_jpeg(im, rng, s):
    return im.copy(), f"jpg:{int(round(95 - 70 * s))}"


def edit_webp(im, rng, s):
    return im.copy(), f"webp:{int(round(95 - 70 * s))}"


def edit_resize(im, rng, s):
    k = 1 - 0.6 * s if rng.random() < 0.8 else 1 + 0.8 * s   # mostly smaller, sometimes larger
    w, h = im.size
    return im.resize((max(8, round(w * k)), max(8, round(h * k))),
                     rng.choice([Image.BILINEAR, Image.BICUBIC, Image.LANCZOS])), "png"


def edit_crop(im, rng, s):
    """A centred crop (the same margin on every side)."""
    w, h = im.size
    m = 0.02 + 0.07 * s
    return im.crop((round(m * w), round(m * h), w - round(m * w), h - round(m * h))), "png"


def edit_offset_crop(im, rng, s):
    """A crop with a different margin on each side (the subject moves off centre)."""
    w, h = im.size
    m = 0.02 + 0.10 * s
    l, t, r, b = (rng.uniform(0.0, 1.0) * m for _ in range(4))
    return im.crop((round(l * w), round(t * h), w - round(r * w), h - round(b * h))), "png"


def edit_bright(im, rng, s):
    return ImageEnhance.Brightness(im).enhance(1 + _sign(rng) * (0.05 + 0.2 * s)), "png"


def edit_contrast(im, rng, s):
    return ImageEnhance.Contrast(im).enhance(1 + _sign(rng) * (0.1 + 0.35 * s)), "png"


def edit_gamma(im, rng, s):
    g = float(np.exp(_sign(rng) * (0.1 + 0.45 * s)))
    lut = [round(255 * (v / 255) ** g) for v in range(256)]
    return im.point(lut * len(im.getbands())), "png"


def edit_colour(im, rng, s):
    """Saturation change plus a tint of the channels."""
    out = ImageEnhance.Color(im).enhance(1 + _sign(rng) * (0.2 + 0.5 * s))
    gains = 1 + rng.uniform(-1, 1, 3) * (0.03 + 0.1 * s)
    a = np.asarray(out, np.float32) * gains
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8)), "png"


def edit_grayscale(im, rng, s):
    return im.convert("L").convert("RGB"), "png"


def edit_rotate(im, rng, s):
    return im.rotate(_sign(rng) * (1 + 5 * s), resample=Image.BICUBIC, fillcolor=_fill(im)), "png"


def edit_shift(im, rng, s):
    w, h = im.size
    dx, dy = (round(_sign(rng) * rng.uniform(0.02, 0.04 + 0.08 * s) * d) for d in (w, h))
    return im.transform(im.size, Image.AFFINE, (1, 0, -dx, 0, 1, -dy),
                        fillcolor=_fill(im)), "png"


def edit_border(im, rng, s):
    w, h = im.size
    px = max(1, round(min(w, h) * (0.02 + 0.12 * s)))
    colour = tuple(int(c) for c in rng.integers(0, 256, 3)) if rng.random() < 0.5 else (
        (0, 0, 0) if rng.random() < 0.5 else (255, 255, 255))
    out = ImageOps.expand(im, border=px, fill=colour)
    return (out.resize(im.size, Image.BICUBIC) if rng.random() < 0.5 else out), "png"


def edit_aspect(im, rng, s):
    w, h = im.size
    k = 1 + 0.1 + 0.3 * s
    size = (round(w * k), h) if rng.random() < 0.5 else (w, round(h * k))
    return im.resize(size, Image.BICUBIC), "png"


def edit_blur(im, rng, s):
    return im.filter(ImageFilter.GaussianBlur(radius=max(im.size) * (0.002 + 0.008 * s))), "png"


def edit_sharpen(im, rng, s):
    return im.filter(ImageFilter.UnsharpMask(radius=2, percent=int(60 + 140 * s),
                                             threshold=2)), "png"


def edit_noise(im, rng, s):
    sigma = 2 + 10 * s
    a = np.asarray(im, np.float32) + rng.normal(0, sigma, (im.height, im.width, 1 if
                                                           rng.random() < 0.3 else 3))
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8)), "png"


def edit_text(im, rng, s):
    """A short caption drawn on the picture, at the top or the bottom."""
    out = im.copy()
    d = ImageDraw.Draw(out)
    size = round(im.height * (0.07 + 0.06 * s))
    font = _font(size)
    text = _caption(rng)
    x = round(rng.uniform(0.02, 0.3) * im.width)
    y = round(im.height * (rng.uniform(0.02, 0.08) if rng.random() < 0.5 else
                           rng.uniform(0.8, 0.88)))
    colour = tuple(int(c) for c in rng.integers(0, 256, 3))
    d.text((x, y), text, fill=colour, font=font,
           stroke_width=1 if rng.random() < 0.5 else 0,
           stroke_fill=(0, 0, 0) if sum(colour) > 384 else (255, 255, 255))
    return out, "png"


def edit_watermark(im, rng, s):
    """A semi-transparent logo (a shape and a word) in a corner."""
    base = im.convert("RGBA")
    layer = Image.new("RGBA", base.size, (0, 0, 0, 0))
    d = ImageDraw.Draw(layer)
    side = round(min(im.size) * (0.12 + 0.12 * s))
    alpha = int(70 + 110 * s)
    colour = tuple(int(c) for c in rng.integers(0, 256, 3))
    cx = rng.choice([0.05, 0.95 - side / im.width]) * im.width
    cy = rng.choice([0.05, 0.95 - side / im.height]) * im.height
    box = (round(cx), round(cy), round(cx) + side, round(cy) + side)
    if rng.random() < 0.5:
        d.ellipse(box, outline=colour + (alpha,), width=max(1, side // 8))
    else:
        d.rectangle(box, outline=colour + (alpha,), width=max(1, side // 8))
    d.text((box[0] + side // 5, box[1] + side // 3), "©", fill=colour + (alpha,),
           font=_font(side // 2))
    return Image.alpha_composite(base, layer).convert("RGB"), "png"


EDITS: dict[str, Callable] = {
    "exact": edit_exact, "jpeg": edit_jpeg, "webp": edit_webp, "resize": edit_resize,
    "crop": edit_crop, "offset_crop": edit_offset_crop, "bright": edit_bright, "contrast": edit_contrast, "gamma": edit_gamma,
    "colour": edit_colour, "grayscale": edit_grayscale, "rotate": edit_rotate,
    "shift": edit_shift, "border": edit_border, "aspect": edit_aspect, "blur": edit_blur,
    "sharpen": edit_sharpen, "noise": edit_noise, "text": edit_text,
    "watermark": edit_watermark,
}
# the edits every standard set plants (re-encodes, resizes, crops, brightness)
BASIC_EDITS = ("exact", "jpeg", "resize", "crop", "bright", "webp")


def apply_edit(im: Image.Image, kind: str, rng, strength: float) -> tuple[Image.Image, str]:
    """One edit (``combo``: two or three different edits in a row, at a little less strength
    each, the last one deciding the file format)."""
    if kind != "combo":
        return EDITS[kind](im, rng, strength)
    chain = rng.choice([k for k in EDITS if k != "exact"], size=int(rng.integers(2, 4)),
                       replace=False)
    fmt = "png"
    for k in chain:
        im, f = EDITS[str(k)](im, rng, strength * 0.75)
        fmt = f if f != "png" else fmt
    return im, fmt


# -- quality defects ------------------------------------------------------------------------

# Strength 0 is a mild defect, 1 a severe one.

def defect_blur(im, rng, s):
    return im.filter(ImageFilter.GaussianBlur(radius=max(im.size) * (0.01 + 0.02 * s)))


def defect_dark(im, rng, s):
    return ImageEnhance.Brightness(im).enhance(0.3 - 0.2 * s)


def defect_bright(im, rng, s):
    """Washed out: the black point lifted to 200 (s = 0) ... 250 (s = 1)."""
    black = 200 + 50 * s
    return im.point(lambda v: int(round(black + v * (255 - black) / 255)))


DEFECTS: dict[str, Callable] = {"blur": defect_blur, "dark": defect_dark,
                                "bright": defect_bright}


# -- the builder ----------------------------------------------------------------------------

def _save(im: Image.Image, folder: Path, stem: str, fmt: str) -> str:
    ext, _, quality = fmt.partition(":")
    name = f"{stem}.{ext}"
    kw = {"quality": int(quality)} if quality else {}
    im.save(folder / name, **kw)
    return name


def build_set(out, *, source: str = "fmnist", n: int = 1000, seed: int = 0,
              noise: float = 0.05, dups: float = 0.03, defects: float = 0.02,
              outliers: float = 0.01, dup_edits: Sequence[str] | str = BASIC_EDITS,
              strength: tuple[float, float] = (0.25, 0.75),
              defect_kinds: Sequence[str] = tuple(DEFECTS),
              defect_strength: tuple[float, float] = (0.8, 1.0)) -> Path:
    """Builds a planted-truth set in ``out`` (once: a folder with ``truth.json`` is returned as
    it is) and returns its path.

    Args:
        source: ``"fmnist"`` or ``"stamps"``
        n: clean images drawn at random from the source (capped at its size)
        seed: everything random (which images, which edits, their strengths) follows from it
        noise: share of clean images whose label is replaced by another class
        dups, defects, outliers: near-duplicates, quality defects and foreign images, each as a
            share of ``n``
        dup_edits: edit kinds for the near-duplicates, cycled in a random order (``"all"``:
            every kind in :data:`EDITS` plus ``"combo"``)
        strength: (low, high): each copy's edit strength is drawn uniformly in this range
        defect_kinds: kinds among :data:`DEFECTS`, cycled
        defect_strength: (low, high) range of each defect's strength

    Example::

        folder = build_set("/tmp/fm300", source="fmnist", n=300, seed=1)
        truth = json.loads((folder / "truth.json").read_text())
    """
    out = Path(out)
    if (out / "truth.json").exists():
        return out
    if source not in SOURCES:
        raise ValueError(f"Unknown source {source!r}; choose from {sorted(SOURCES)}")
    kinds = list(EDITS) + ["combo"] if dup_edits == "all" else list(dup_edits)
    unknown = [k for k in kinds if k not in EDITS and k != "combo"]
    if unknown:
        raise ValueError(f"Unknown edits {unknown}; choose from {list(EDITS) + ['combo']}")
    rng = np.random.default_rng(seed)
    src = SOURCES[source]()
    other = SOURCES["stamps" if source == "fmnist" else "fmnist"]()
    data = out / "data"
    data.mkdir(parents=True, exist_ok=True)
    truth: dict[str, dict] = {}

    picked = rng.choice(len(src), size=min(n, len(src)), replace=False)
    clean = []
    for j, i in enumerate(picked):
        im, true = src.image(i), src.labels[i]
        given = true
        if rng.random() < noise:
            given = str(rng.choice([c for c in src.classes if c != true]))
        name = _save(im, data, f"img{j:06d}", "png")
        truth[name] = dict(true=true, label=given, mislabeled=given != true)
        clean.append((name, im))
    n_clean = len(clean)

    order = rng.permutation(kinds)
    lo, hi = strength
    for t, k in enumerate(rng.choice(n_clean, size=int(dups * n_clean), replace=False)):
        name0, im = clean[k]
        kind = str(order[t % len(order)])
        s = float(rng.uniform(lo, hi))
        im2, fmt = apply_edit(im, kind, rng, s)
        name = _save(im2, data, f"dup{t:05d}", fmt)
        truth[name] = dict(truth[name0], dup_of=name0, dup_kind=kind, edit_strength=round(s, 3))

    dkinds = list(defect_kinds)
    for t, k in enumerate(rng.choice(n_clean, size=int(defects * n_clean), replace=False)):
        name0, im = clean[k]
        kind = dkinds[t % len(dkinds)]
        s = float(rng.uniform(*defect_strength))
        name = _save(DEFECTS[kind](im, rng, s), data, f"q{t:05d}", "png")
        truth[name] = dict(truth[name0], defect=kind, derived_from=name0,
                           edit_strength=round(s, 3))

    size = clean[0][1].size
    for t, i in enumerate(rng.choice(len(other), size=int(outliers * n_clean), replace=False)):
        label = str(rng.choice(src.classes))
        name = _save(other.image(i).resize(size, Image.BICUBIC), data, f"out{t:05d}", "png")
        truth[name] = dict(true=None, label=label, mislabeled=False, outlier=True)

    for t in truth.values():
        t.setdefault("dup_of", None)
        t.setdefault("defect", None)
        t.setdefault("outlier", False)
    labels = {Path(name).stem: src.classes.index(t["label"]) for name, t in truth.items()}
    (out / "labels.json").write_text(json.dumps({"classes": src.classes, "labels": labels}))
    tmp = out / "truth.json.tmp"
    tmp.write_text(json.dumps(truth, indent=0))
    os.replace(tmp, out / "truth.json")
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--source", choices=sorted(SOURCES), default="fmnist")
    ap.add_argument("--n", type=int, default=1000, help="clean images drawn from the source")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--noise", type=float, default=0.05, help="share of labels flipped")
    ap.add_argument("--dups", type=float, default=0.03, help="near-duplicates, share of n")
    ap.add_argument("--defects", type=float, default=0.02, help="quality defects, share of n")
    ap.add_argument("--outliers", type=float, default=0.01, help="foreign images, share of n")
    ap.add_argument("--dup-edits", default=",".join(BASIC_EDITS),
                    help=f"comma-separated among {','.join(EDITS)},combo; or 'all'")
    ap.add_argument("--strength", type=float, nargs=2, default=(0.25, 0.75),
                    metavar=("LOW", "HIGH"), help="edit strength range in [0, 1]")
    ap.add_argument("--defect-strength", type=float, nargs=2, default=(0.8, 1.0),
                    metavar=("LOW", "HIGH"), help="quality defect strength range in [0, 1]")
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    edits = "all" if a.dup_edits == "all" else a.dup_edits.split(",")
    out = build_set(a.out, source=a.source, n=a.n, seed=a.seed, noise=a.noise, dups=a.dups,
                    defects=a.defects, outliers=a.outliers, dup_edits=edits,
                    strength=tuple(a.strength), defect_strength=tuple(a.defect_strength))
    truth = json.loads((out / "truth.json").read_text())
    print(f"{out}: {len(truth)} images (seed {a.seed})")


if __name__ == "__main__":
    main()
