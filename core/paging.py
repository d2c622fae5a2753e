"""Keeps the resident part of a memory-mapped vector array within a share of the machine's
memory.

Ten million 512-d float16 vectors are a 10 GB file (see :meth:`VectorStore.vectors
<visual_curation.core.store.VectorStore.vectors>`). Every page of it the analyses touch
stays mapped into the process, so its resident size grows to the whole file although the
operating system holds the same pages in its file cache anyway and could drop them. A
:class:`ResidentCap` watches the process's file-backed resident memory and, when the pages
mapped since it started exceed ``cap`` bytes, unmaps them all (``madvise(MADV_DONTNEED)``):
the data stays in the file cache (or on disk), and the next read of a page maps it again. On
a shared file mapping this never loses a write. Where ``madvise`` or ``/proc`` is missing
(not Linux), it does nothing.
"""

from __future__ import annotations

import mmap
import threading
import weakref

import numpy as np

#: how often the resident size is looked at (seconds)
POLL_S = 0.2


def _mapping(arr):
    """The ``mmap.mmap`` under ``arr`` (a ``np.memmap`` or a view of one), or ``None``."""
    a = arr
    while a is not None:
        m = getattr(a, "_mmap", None)
        if isinstance(m, mmap.mmap):
            return m
        a = getattr(a, "base", None)
        if isinstance(a, mmap.mmap):
            return a
    return None


def _shared_bytes():
    """This process's resident file-backed and shared memory (bytes), or ``None``."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[2]) * mmap.PAGESIZE
    except (OSError, ValueError, IndexError):
        return None


def drop_resident(arr) -> bool:
    """Unmaps every resident page of the memory-mapped ``arr`` from this process (the data
    stays in the file); ``False`` where ``arr`` is not memory-mapped or the system cannot.

    >>> import numpy as np
    >>> drop_resident(np.zeros(3))
    False
    """
    m = _mapping(arr)
    if m is None or not hasattr(mmap, "MADV_DONTNEED") or m.closed:
        return False
    try:
        m.madvise(mmap.MADV_DONTNEED)
    except (OSError, ValueError):
        return False
    return True


class ResidentCap:
    """A daemon thread that keeps the pages of ``arr`` mapped into this process below
    ``cap`` bytes (above the file-backed memory the process had when it started). It stops
    by itself when ``arr`` and every view of it are gone, or on :meth:`stop`.

    ``drops``: how many times it unmapped the array.
    """

    def __init__(self, arr: np.ndarray, cap: int, poll_s: float = POLL_S):
        self.cap = int(cap)
        self.drops = 0
        self._ref = weakref.ref(arr)
        self._base = _shared_bytes()
        self._stop = threading.Event()
        self._thread = None
        if self._base is not None and _mapping(arr) is not None and hasattr(mmap, "MADV_DONTNEED"):
            self._thread = threading.Thread(target=self._run, args=(poll_s,), daemon=True,
                                            name="vc-resident-cap")
            self._thread.start()

    @property
    def active(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self, poll_s):
        while not self._stop.wait(poll_s):
            arr = self._ref()
            if arr is None:
                return
            now = _shared_bytes()
            if now is not None and now - self._base > self.cap and drop_resident(arr):
                self.drops += 1
            del arr

    def stop(self):
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
