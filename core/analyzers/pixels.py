"""Reading item pixels for the pixel analyzers (quality, duplicates): OpenCV first, PIL as a
fallback, optional crop to a relative ``[x, y, w, h]`` box, never an exception per item."""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .. import images as vci

#: worker threads for reading images (OpenCV releases the GIL while decoding)
WORKERS = 2


_CV2_QUIET = False


def _read_cv2(path):
    import cv2

    global _CV2_QUIET
    if not _CV2_QUIET:   # unreadable files are reported on their items, not on the terminal
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
        _CV2_QUIET = True
    im = cv2.imread(str(path), cv2.IMREAD_COLOR)  # BGR uint8, None if unreadable
    if im is None:
        return None
    return cv2.cvtColor(im, cv2.COLOR_BGR2RGB)    # contiguous (a reversed view is copied later)


def _read_pil(path):
    from PIL import Image, ImageOps

    with Image.open(path) as im:
        im = ImageOps.exif_transpose(im)
        if im.mode in ("RGBA", "LA", "P"):
            im = im.convert("RGBA")
            bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
            bg.alpha_composite(im)
            im = bg
        return np.asarray(im.convert("RGB"))


def read_rgb(path, box=None) -> np.ndarray:
    """RGB uint8 array (H, W, 3) of ``path``, cropped to the relative box ``[x, y, w, h]``.

    Raises ``ValueError``/``OSError`` with a readable message when it cannot be read.
    """
    if path is None:
        raise ValueError("no filepath")
    if not os.path.isfile(path):
        raise OSError(f"file not found: {path}")
    try:
        im = _read_cv2(path)
    except Exception:  # noqa: BLE001
        im = None
    if im is None:
        try:
            im = _read_pil(path)
        except FileNotFoundError:
            raise OSError(f"file not found: {path}") from None
        except Exception as e:  # noqa: BLE001
            raise OSError(f"unreadable image {path}: {type(e).__name__}: {e}") from None
    if im.ndim == 2:
        im = np.repeat(im[:, :, None], 3, axis=2)
    if box is not None:
        h, w = im.shape[:2]
        x0 = int(round(float(box[0]) * w)); y0 = int(round(float(box[1]) * h))
        x1 = int(round((float(box[0]) + float(box[2])) * w))
        y1 = int(round((float(box[1]) + float(box[3])) * h))
        x0, x1 = max(0, min(x0, w)), max(0, min(x1, w))
        y0, y1 = max(0, min(y0, h)), max(0, min(y1, h))
        if x1 - x0 < 2 or y1 - y0 < 2:
            raise ValueError(f"empty crop {list(box)} of a {w}x{h} image")
        im = im[y0:y1, x0:x1]
    if im.size == 0:
        raise ValueError("empty image")
    return np.ascontiguousarray(im)


def to_gray(rgb: np.ndarray) -> np.ndarray:
    """Luminance (ITU-R BT.601, as OpenCV) as uint8."""
    import cv2

    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


#: items from which map_items reads in worker processes (forked: no pickling of ``fn``, no
#: re-import of the caller's script) instead of threads, whose per-image Python work holds the GIL
PROCESS_MIN_ITEMS = 4000
CHUNK = 256

_JOB = None  # (fn, filepaths, boxes, indexed) inherited by forked workers


def _one(fn, path, box, i=None):
    try:
        rgb = read_rgb(path, box)
        return (fn(rgb) if i is None else fn(i, rgb)), None
    except Exception as e:  # noqa: BLE001
        return None, (str(e) or type(e).__name__)


def shared_array(shape, dtype) -> np.ndarray:
    """A zeroed array in memory shared with the processes this one forks: what
    :func:`map_items`'s forked workers write into it, the caller reads (no pickling back)."""
    import mmap

    count = int(np.prod(shape))
    buf = mmap.mmap(-1, max(count * np.dtype(dtype).itemsize, 1))   # MAP_SHARED | ANONYMOUS
    return np.frombuffer(buf, dtype, count=count).reshape(shape)


def _worker_init():
    import cv2
    from threadpoolctl import threadpool_limits

    cv2.setNumThreads(1)
    threadpool_limits(1)


def _chunk(indices):
    fn, filepaths, boxes, indexed = _JOB
    return [(i, *_one(fn, filepaths[i], boxes[i] if boxes is not None else None,
                      i if indexed else None))
            for i in indices]


def map_items(fn, indices, filepaths, boxes=None, progress=None, span=(0.0, 1.0), msg="",
              indexed=False):
    """Apply ``fn(rgb_array) -> value`` (``fn(index, rgb_array)`` when ``indexed``) to each
    item index, in ``WORKERS`` forked processes for large batches (``PROCESS_MIN_ITEMS``) and a
    thread pool otherwise. (Large per-item results are better written by ``fn`` into a
    :func:`shared_array` than returned: values come back pickled.)

    Returns ``(values dict index->value, errors dict index->message)``; a failing read or
    ``fn`` becomes an error entry, never an exception.
    """
    from .base import report

    global _JOB
    indices = list(indices)
    out, errors = {}, {}
    n = max(len(indices), 1)
    step = max(1, n // 50)
    done = 0

    def take(i, val, err):
        nonlocal done
        if err is None:
            out[i] = val
        else:
            errors[i] = err
        done += 1
        if done % step == 0:
            report(progress, span[0] + (span[1] - span[0]) * done / n, msg)

    _JOB = (fn, filepaths, boxes, indexed)
    pool = None
    if len(indices) >= PROCESS_MIN_ITEMS:
        import cv2

        # OpenCV's worker threads are not fork-safe: a child forked while this process has
        # them hangs on its first OpenCV call. One thread while the pool lives, then restored.
        cv2_threads = cv2.getNumThreads()
        cv2.setNumThreads(1)
        pool = vci.fork_pool(WORKERS, _worker_init)
        if pool is None:
            cv2.setNumThreads(cv2_threads)
    if pool is None:
        _JOB = None
    else:
        try:
            chunks = [indices[k:k + CHUNK] for k in range(0, len(indices), CHUNK)]
            with pool:
                for res in pool.imap(_chunk, chunks):
                    for item in res:
                        take(*item)
        finally:
            _JOB = None
            cv2.setNumThreads(cv2_threads)
        return out, errors

    from threadpoolctl import threadpool_limits

    def work(i):
        return (i, *_one(fn, filepaths[i], boxes[i] if boxes is not None else None,
                         i if indexed else None))

    # the per-image matrix products are tiny: BLAS threads inside each worker only contend
    with threadpool_limits(1, user_api="blas"), ThreadPoolExecutor(WORKERS) as pool:
        for item in pool.map(work, indices):
            take(*item)
    return out, errors


#: bytes of decoded images an :class:`ImageCache` keeps
CACHE_BYTES = 256 << 20


class ImageCache:
    """``cache(i)``: the RGB array of item ``i`` (:func:`read_rgb` of its file and box), the
    least recently used dropped beyond ``max_bytes``. Shared by threads (a lock guards the
    bookkeeping; two threads may decode one item at once, and one copy is kept).
    ``reads``: the decodes so far."""

    def __init__(self, filepaths, boxes=None, max_bytes: int = CACHE_BYTES):
        import threading
        from collections import OrderedDict

        self.filepaths, self.boxes, self.max_bytes = filepaths, boxes, int(max_bytes)
        self.reads = 0
        self._held = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def __call__(self, i):
        with self._lock:
            x = self._held.get(i)
            if x is not None:
                self._held.move_to_end(i)
                return x
        x = read_rgb(self.filepaths[i], self.boxes[i] if self.boxes else None)
        with self._lock:
            self.reads += 1
            if i not in self._held:
                self._held[i] = x
                self._bytes += x.nbytes
            while self._bytes > self.max_bytes and len(self._held) > 1:
                self._bytes -= self._held.popitem(last=False)[1].nbytes
        return x
