"""The demo (``make demo ARGS=--no-launch``) builds its dataset offline and runs every analysis."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_demo_no_launch_builds_an_analysed_dataset(tmp_path):
    env = dict(os.environ)
    r = subprocess.run([sys.executable, str(REPO / "tools" / "demo.py"), "--no-launch", "--fresh",
                        "--n", "300", "--data-dir", str(tmp_path / "demo")],
                       env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    import fiftyone as fo

    ds = fo.load_dataset("visual-curation-demo")
    try:
        assert ds.persistent and len(ds) >= 300
        for f in ["vc_cluster_1", "vc_cluster_5", "vc_dup_group", "vc_duplicate",
                  "vc_uniqueness", "vc_mislabel", "vc_suggested_label", "vc_outlier", "vc_blur",
                  "vc_dark", "vc_bright", "vc_issues"]:
            assert ds.has_sample_field(f), f
        issues = ds.count_values("vc_issues")
        assert issues.get("duplicate", 0) > 0 and issues.get("dark", 0) > 0
        # a second run is incremental and a no-op for the analyses
        r2 = subprocess.run([sys.executable, str(REPO / "tools" / "demo.py"), "--no-launch",
                             "--n", "300", "--data-dir", str(tmp_path / "demo")],
                            env=env, capture_output=True, text=True, timeout=900)
        assert r2.returncode == 0 and "0 embedded" in r2.stdout, r2.stdout + r2.stderr
    finally:
        import visual_curation as vc

        vc.delete_run(ds)
        ds.delete()
