"""Vectors without readable pixels (moved media, vectors brought without images): duplicates
come from the vectors alone, each sample's vc_error says why, and the terminal stays quiet
(bench/nopixels.py measures the same at 100,000 samples)."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))


@pytest.mark.slow
@pytest.mark.parametrize("seed", [11])
def test_planted_copies_grouped_without_pixels(seed):
    from nopixels import run

    r = run(n=4000, seed=seed, name=f"vc-test-nopixels-{seed}")
    print(r)
    assert r["recall"] >= 0.99
    assert r["false_pairs"] <= 0.01 * r["planted_pairs"]
    # every sample the duplicate check tried to read says why it was judged without pixels
    assert r["with_reason"] == r["summary_pixel_errors"] >= 2 * r["planted_pairs"]
    assert r["stderr_file_lines"] == 0          # no per-file warnings on the terminal
    assert r["stderr_lines"] <= 3
