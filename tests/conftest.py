"""Test set-up: an isolated MongoDB database name and LanceDB folder (never a user's), and real
planted-truth data built with the project's own builder (tools/planted_sets.py)."""
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

# FiftyOne reads its config at import: set everything before anything imports it.
_TMP = Path(tempfile.mkdtemp(prefix="vc-tests-"))
# VC_TEST_DB_SUFFIX lets two test runs share one machine; never a user's own database name.
os.environ["FIFTYONE_DATABASE_NAME"] = "visual-curation-tests" + (
    "-" + os.environ["VC_TEST_DB_SUFFIX"] if os.environ.get("VC_TEST_DB_SUFFIX") else "")
os.environ["VISUAL_CURATION_LANCEDB_URI"] = str(_TMP / "lancedb")
os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
os.environ.setdefault("FIFTYONE_DATABASE_VALIDATION", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("SENTRY_OPT_OUT", "1")

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
ARTIFACTS = REPO / "test-artifacts"


if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
from tools.planted_sets import build_set  # noqa: E402


def make_bench(out, source="fmnist", n=300, seed=0, **kw):
    """Builds (once per path) a planted-truth set with the project's own builder
    (``tools/planted_sets.py``); returns its folder."""
    return build_set(out, source=source, n=n, seed=seed, **kw)


def load_bench_dataset(folder, name):
    """A FiftyOne dataset (label field ``ground_truth``) of a planted-truth folder, with a
    ``truth`` dict per sample for assertions."""
    import fiftyone as fo

    if fo.dataset_exists(name):
        fo.delete_dataset(name)
    ds = fo.Dataset.from_dir(dataset_dir=str(folder),
                             dataset_type=fo.types.FiftyOneImageClassificationDataset,
                             name=name, label_field="ground_truth")
    truth = json.loads((Path(folder) / "truth.json").read_text())
    ds.set_values("bench_truth_kind", [
        _kind(truth.get(Path(p).name, {})) for p in ds.values("filepath")])
    return ds, truth


def _kind(t):
    if t.get("outlier"):
        return "outlier"
    if t.get("defect"):
        return t["defect"]
    if t.get("dup_of"):
        return "dup"
    return "mislabeled" if t.get("mislabeled") else "clean"


@pytest.fixture(scope="session")
def tmp_root():
    yield _TMP
    shutil.rmtree(_TMP, ignore_errors=True)


@pytest.fixture(scope="session")
def fmnist_small(tmp_root):
    return make_bench(tmp_root / "fm300", "fmnist", n=300, seed=1)


@pytest.fixture()
def fmnist_dataset(fmnist_small, request):
    ds, truth = load_bench_dataset(fmnist_small, f"vc-test-{request.node.name}"[:100])
    yield ds, truth
    _cleanup(ds)


def _cleanup(ds):
    try:
        import visual_curation as vc

        vc.delete_run(ds)
    except Exception:  # noqa: BLE001
        pass
    try:
        ds.delete()
    except Exception:  # noqa: BLE001
        pass


@pytest.fixture()
def detection_dataset(request):
    """The shipped detection fixture: Fashion-MNIST items laid out on canvases, with boxes."""
    import fiftyone as fo

    name = f"vc-det-{request.node.name}"[:100]
    if fo.dataset_exists(name):
        fo.delete_dataset(name)
    root = FIXTURES / "detections"
    ds = fo.Dataset(name)
    samples = []
    for rec in json.loads((root / "detections.json").read_text()):
        dets = [fo.Detection(label=d["label"], bounding_box=d["bounding_box"])
                for d in rec["detections"]]
        samples.append(fo.Sample(filepath=str(root / rec["filepath"]),
                                 ground_truth=fo.Detections(detections=dets)))
    ds.add_samples(samples)
    yield ds
    _cleanup(ds)


@pytest.fixture(scope="session")
def artifacts():
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


# -- appended for the operator and App tests (tests/test_operators.py, tests/e2e/) ------------
# FiftyOne finds the plugin through FIFTYONE_PLUGINS_DIR (read when fiftyone is imported): use
# the caller's folder when it lists this repository, else a temporary one that links to it.
def _plugins_dir_with_this_repo():
    current = os.environ.get("FIFTYONE_PLUGINS_DIR")
    if current and Path(current).is_dir():
        for entry in Path(current).iterdir():
            try:
                if entry.resolve() == REPO:
                    return current
            except OSError:
                continue
    folder = _TMP / "fiftyone-plugins"
    folder.mkdir(exist_ok=True)
    link = folder / "visual-curation"
    if not link.exists():
        link.symlink_to(REPO, target_is_directory=True)
    return str(folder)


os.environ["FIFTYONE_PLUGINS_DIR"] = _plugins_dir_with_this_repo()

PLUGIN_URI = "@visual-curation/curation"


def run_operator(name, dataset=None, view=None, params=None, **ctx):
    """Executes one of this plugin's operators headlessly, exactly as the SDK does
    (``fiftyone.operators.execute_operator``); returns the ``ExecutionResult``."""
    import fiftyone.operators as foo

    return foo.execute_operator(f"{PLUGIN_URI}/{name}", ctx=dict(
        dataset=dataset, view=view, params=params or {}, **ctx))


def triggered(result, operator_name):
    """The params of each ``ctx.ops.<operator_name>(...)`` an operator triggered."""
    reqs = result.executor.to_json()["requests"] if result.executor else []
    return [r.get("params") or {} for r in reqs if r.get("operator_uri") == operator_name]


def load_bench_dataset_persistent(folder, name):
    """:func:`load_bench_dataset`, but persistent from the first write: a FiftyOne process that
    exits while it believes itself the database's only client deletes every non-persistent
    dataset (``atexit``), and other sessions may share this test database. The App server
    subprocess also needs it persistent. Delete it with ``_cleanup``."""
    import fiftyone as fo

    if fo.dataset_exists(name):
        fo.delete_dataset(name)
    ds = fo.Dataset.from_dir(dataset_dir=str(folder),
                             dataset_type=fo.types.FiftyOneImageClassificationDataset,
                             name=name, label_field="ground_truth", persistent=True)
    truth = json.loads((Path(folder) / "truth.json").read_text())
    ds.set_values("bench_truth_kind", [
        _kind(truth.get(Path(p).name, {})) for p in ds.values("filepath")])
    return ds, truth


@pytest.fixture(scope="session")
def vc_helpers():
    """This module's helpers for tests in other folders (``import conftest`` is ambiguous once
    tests/e2e/ has its own conftest): make_bench, load_bench_dataset(_persistent),
    run_operator, triggered, cleanup."""
    from types import SimpleNamespace

    return SimpleNamespace(make_bench=make_bench, load_bench_dataset=load_bench_dataset,
                           load_bench_dataset_persistent=load_bench_dataset_persistent,
                           run_operator=run_operator, triggered=triggered, cleanup=_cleanup,
                           plugin_uri=PLUGIN_URI)


@pytest.fixture(scope="session")
def figures():
    """``figures(name, **values)``: measured figures for bench/RESULTS.md, added to the JSON
    file named by ``VC_FIGURES`` (set by bench/run.py's reliability section; a no-op otherwise)."""
    def record(name, **values):
        path = os.environ.get("VC_FIGURES")
        if not path:
            return
        p = Path(path)
        data = json.loads(p.read_text()) if p.exists() else {}
        data.setdefault(name, {}).update(values)
        p.write_text(json.dumps(data, indent=1))

    return record
