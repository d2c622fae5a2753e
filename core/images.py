"""Robust image reading: every valid image becomes an upright RGB ``PIL.Image``, every broken one
a short message saying what is wrong — never an exception that stops a run.

Handles CMYK, 16-bit and float images, palette/alpha (composited on white), EXIF orientation,
animated images (first frame) and huge images (decoded downscaled: JPEG draft mode, then
``reduce``), without lifting Pillow's decompression-bomb guard more than needed.
"""
from __future__ import annotations

import hashlib
import io
import os
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# Images above this many pixels are decoded downscaled; a 100-megapixel photo is valid input.
Image.MAX_IMAGE_PIXELS = max(Image.MAX_IMAGE_PIXELS or 0, 400_000_000)
MAX_SIDE = 1024  # decoded images are at most this big on their longest side


class ImageError(Exception):
    """A file that cannot be used as an image; ``str(e)`` says why, for ``vc_error``."""


def fork_pool(workers, initializer=None):
    """A pool of ``workers`` forked processes for reading images, or None where forking is not
    available or there is a single core (callers then use threads).

    Per-image Python work in PIL holds the GIL, so threads give about one core. Forked workers
    inherit the caller's state (nothing is pickled but the work items and the results); they
    only read images and never touch LanceDB or Lance, whose fork warnings are silenced here."""
    import multiprocessing

    if workers < 2 or (os.cpu_count() or 1) < 2 \
            or "fork" not in multiprocessing.get_all_start_methods():
        return None
    import sys

    if "ray" in sys.modules:   # Ray's gRPC threads may hold locks a forked child would wait on
        return None
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*lancedb fork support")
        warnings.filterwarnings("ignore", message="lance is not fork-safe")
        return multiprocessing.get_context("fork").Pool(workers, initializer=initializer)


def file_fingerprint(path):
    """``"<size>:<mtime_ns>"`` — cheap change detection, or None when the file is missing."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return f"{st.st_size}:{st.st_mtime_ns}"


def read_bytes(path):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise ImageError(f"file not found: {path}")
    except IsADirectoryError:
        raise ImageError(f"not a file: {path}")
    except PermissionError:
        raise ImageError(f"permission denied: {path}")
    except OSError as e:
        raise ImageError(f"cannot read file: {e.strerror or e}")
    if not data:
        raise ImageError("empty file (0 bytes)")
    return data


def content_hash(data):
    return hashlib.sha1(data).hexdigest()


def to_rgb(im):
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(im, dtype=np.float32)
        lo, hi = float(arr.min()), float(arr.max())
        if mode.startswith("I;16"):
            lo, hi = 0.0, 65535.0
        scale = 255.0 / (hi - lo) if hi > lo else 0.0
        im = Image.fromarray(np.clip((arr - lo) * scale, 0, 255).astype(np.uint8), "L")
        mode = "L"
    if mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
        mode = im.mode
    if mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        im = im.convert("RGBA")
        bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
        bg.alpha_composite(im)
        return bg.convert("RGB")
    if mode != "RGB":
        return im.convert("RGB")
    return im


def decode(data, max_side=MAX_SIDE):
    """Bytes → upright RGB image, at most ``max_side`` on its longest side."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            im = Image.open(io.BytesIO(data))
            if getattr(im, "n_frames", 1) > 1:
                im.seek(0)
            orig = im.size
            try:
                if im.getexif().get(0x0112) in (5, 6, 7, 8):
                    orig = orig[::-1]
            except Exception:  # noqa: BLE001 - unreadable EXIF is not an error
                pass
            if im.format == "JPEG" and max(im.size) > 2 * max_side:
                im.draft("RGB", (max_side, max_side))
            im.load()
            im = ImageOps.exif_transpose(im)
            if max(im.size) > max_side:
                factor = max(1, int(max(im.size) // max_side))
                if factor > 1:
                    im = im.reduce(factor)
                if max(im.size) > max_side:
                    im.thumbnail((max_side, max_side), Image.BILINEAR)
            if im.width < 1 or im.height < 1:
                raise ImageError("image has no pixels")
            out = to_rgb(im)
            out.info["vc_size"] = orig  # (width, height) of the file, before downscaling
            return out
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError("not an image file (unrecognised format)")
    except Image.DecompressionBombError as e:
        raise ImageError(f"image too large to decode safely: {e}")
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        msg = str(e) or type(e).__name__
        if "truncated" in msg:
            msg = "truncated or corrupt image data (" + msg + ")"
        raise ImageError(f"cannot decode image: {msg}")
    except MemoryError:
        raise ImageError("not enough memory to decode the image")


def load_image(path, max_side=MAX_SIDE):
    """Returns ``(rgb_image, sha1_of_bytes)``; raises :class:`ImageError` with a clear message."""
    data = read_bytes(path)
    return decode(data, max_side=max_side), content_hash(data)


def crop_relative(im, box, padding=0.0):
    """Crops a FiftyOne relative box ``[x, y, w, h]`` (plus ``padding`` × box size on each side)."""
    x, y, w, h = (float(v) for v in box)
    px, py = w * padding, h * padding
    W, H = im.size
    left, top = max(0, int(round((x - px) * W))), max(0, int(round((y - py) * H)))
    right, bottom = min(W, int(round((x + w + px) * W))), min(H, int(round((y + h + py) * H)))
    if right - left < 1 or bottom - top < 1:
        raise ImageError("box is empty after clipping to the image")
    return im.crop((left, top, right, bottom))
