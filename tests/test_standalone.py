"""A copy of the repository works on its own: nothing refers to files outside it, and an
archive of HEAD unpacked into an empty folder builds the demo and passes a test module."""
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# paths a user's clone does not have: a folder beside the repository, machine-specific roots
OUTSIDE = re.compile("|".join([r"\.\./" + "shared", "/" + "work/", "/" + "farm/",
                               "/" + "root/", "/" + "home/[a-z]"]))


def _tracked():
    out = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z"], capture_output=True,
                         check=True).stdout
    return [REPO / p for p in out.decode().split("\0") if p]


def test_no_tracked_file_refers_outside_the_repository():
    hits = []
    for path in _tracked():
        try:
            text = path.read_text()
        except (UnicodeDecodeError, FileNotFoundError, IsADirectoryError):
            continue   # binary files (checkpoints, images)
        for n, line in enumerate(text.splitlines(), 1):
            if OUTSIDE.search(line):
                hits.append(f"{path.relative_to(REPO)}:{n}: {line.strip()[:120]}")
    assert not hits, "paths outside the repository:\n" + "\n".join(hits)


def _unpacked_head(tmp_path):
    """``git archive HEAD`` unpacked into ``tmp_path/my-clone`` (a folder name that is no
    Python identifier, as a clone's often is), and ``tmp_path/path/visual_curation`` linking
    to it, so that ``PYTHONPATH=tmp_path/path`` imports the copy's code ahead of the editable
    install."""
    tar = tmp_path / "head.tar"
    subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", "-o", str(tar), "HEAD"],
                   check=True)
    root = tmp_path / "my-clone"
    root.mkdir()
    with tarfile.open(tar) as t:
        t.extractall(root, filter="data")
    (tmp_path / "path").mkdir()
    (tmp_path / "path" / "visual_curation").symlink_to(root, target_is_directory=True)
    assert not (tmp_path / "shared").exists() and not (tmp_path.parent / "shared").exists()
    return root


@pytest.mark.slow
def test_archive_of_head_runs_on_its_own(tmp_path):
    root = _unpacked_head(tmp_path)
    env = dict(os.environ, PYTHONPATH=str(tmp_path / "path"),
               FIFTYONE_DATABASE_NAME="visual-curation-tests-standalone",
               VC_TEST_DB_SUFFIX="standalone",
               VISUAL_CURATION_LANCEDB_URI=str(tmp_path / "lancedb"))
    env.pop("FIFTYONE_PLUGINS_DIR", None)

    def run(*args, timeout=600):
        r = subprocess.run([sys.executable, *args], cwd=root, env=env, capture_output=True,
                           text=True, timeout=timeout)
        assert r.returncode == 0, f"{args}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
        return r

    where = run("-c", "import visual_curation; print(visual_curation.__file__)")
    assert Path(where.stdout.strip()).resolve().is_relative_to(root.resolve())
    demo = run("tools/demo.py", "--no-launch", "--n", "60", "--fresh",
               "--data-dir", str(tmp_path / "demo-images"))
    assert "is ready" in demo.stdout and "Analysed" in demo.stdout
    assert (tmp_path / "demo-images" / "truth.json").exists()
    run("-c", "import fiftyone as fo; fo.delete_dataset('visual-curation-demo')")
    # the module's fast tests, one of them on a set the copy's builder makes
    tests = run("-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_analyzers.py",
                "-m", "not slow")
    passed = re.search(r"(\d+) passed", tests.stdout)
    assert passed and int(passed.group(1)) >= 10 and "failed" not in tests.stdout
