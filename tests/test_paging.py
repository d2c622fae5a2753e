"""The resident cap of memory-mapped vectors: pages are unmapped from the process, never lost."""

import gc
import sys
import time

import numpy as np
import pytest

from visual_curation.core import paging

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc and madvise")

MB = 1 << 20


def _mapped(tmp_path, n_mb=64):
    return np.lib.format.open_memmap(tmp_path / "v.npy", mode="w+", dtype=np.float16,
                                     shape=(n_mb * MB // 1024, 512))


def test_drop_resident_unmaps_pages_and_keeps_every_write(tmp_path):
    a = _mapped(tmp_path)
    rng = np.random.default_rng(3)
    a[:] = rng.standard_normal(a.shape).astype(np.float16)   # dirty pages, never flushed
    ref = np.array(a)
    before = paging._shared_bytes()
    assert paging.drop_resident(a[10:20])                    # a view reaches the mapping
    after = paging._shared_bytes()
    assert before - after >= 60 * MB
    assert np.array_equal(np.asarray(a), ref)                # read back from the file cache
    assert paging._shared_bytes() - after >= 60 * MB
    assert not paging.drop_resident(ref)                     # not memory-mapped


def test_resident_cap_bounds_mapped_pages_and_stops_with_the_array(tmp_path):
    a = _mapped(tmp_path)
    a[:] = 1
    paging.drop_resident(a)
    cap = paging.ResidentCap(a, 16 * MB, poll_s=0.02)
    assert cap.active
    start = paging._shared_bytes()
    worst = 0
    for b0 in range(0, len(a), 4096):                        # 4 MB at a time, slowly
        assert float(np.asarray(a[b0:b0 + 4096], np.float32).sum()) == 4096 * 512
        time.sleep(0.03)
        worst = max(worst, paging._shared_bytes() - start)
    assert cap.drops >= 2
    assert worst <= 16 * MB + 3 * 4 * MB                     # the cap, plus reads in one poll
    del a
    gc.collect()
    cap._thread.join(timeout=2)
    assert not cap.active                                    # gone with the array


def test_store_spills_get_a_cap(tmp_path):
    from visual_curation.core import store

    out = store._alloc((1000, 8), np.float16, str(tmp_path))
    assert isinstance(out.resident_cap, paging.ResidentCap) and out.resident_cap.active
    assert not hasattr(store._alloc((10, 8), np.float16), "resident_cap")
    cap = out.resident_cap
    del out
    gc.collect()
    cap._thread.join(timeout=2)
    assert not cap.active
