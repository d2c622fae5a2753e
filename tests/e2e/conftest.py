"""Browser fixtures: the REAL FiftyOne App server in a subprocess (same test database, LanceDB
folder and plugins folder as the tests) and Debian's Chromium driven by Playwright, headless.

Nothing is downloaded: Playwright launches /usr/bin/chromium (``VC_CHROMIUM`` overrides it).
The tests are skipped, with the reason, when Playwright or Chromium is missing.
"""
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

CHROMIUM = os.environ.get("VC_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-dev-shm-usage"]
SERVER_START_TIMEOUT = 120
E2E_DATASET = "vc-e2e"
E2E_EMPTY_DATASET = "vc-e2e-no-embeddings"


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url, proc, timeout):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200:
                    return True
        except Exception:  # noqa: BLE001 - not up yet
            pass
        time.sleep(0.5)
    return False


@pytest.fixture(scope="session")
def e2e_dataset(tmp_root, vc_helpers):
    """≤ 300 Fashion-MNIST images with planted defects (dark ones among them), embedded with
    the offline demo model through the SDK; persistent so that the App server sees it."""
    import visual_curation as vc

    folder = vc_helpers.make_bench(tmp_root / "e2e250", "fmnist", n=250, seed=2, defects=0.1)
    ds, truth = vc_helpers.load_bench_dataset_persistent(folder, E2E_DATASET)
    vc.compute_embeddings(ds, model="demo", progress=False)
    yield ds
    vc_helpers.cleanup(ds)


@pytest.fixture(scope="session")
def analysed_fmnist(tmp_root, vc_helpers):
    """``analysed_fmnist(name)``: the 250 Fashion-MNIST images with planted defects (seed 2)
    that the panel and clean tests share, as a persistent dataset of their own named ``name``,
    every analysis run (demo model); deleted at the end of the session."""
    import visual_curation as vc

    made = []

    def make(name):
        folder = vc_helpers.make_bench(tmp_root / "e2e250", "fmnist", n=250, seed=2,
                                       defects=0.1)
        ds, _ = vc_helpers.load_bench_dataset(folder, name)
        ds.persistent = True
        vc.analyze(ds, label_field="ground_truth", model="demo", progress=False)
        made.append(ds)
        return ds

    yield make
    for ds in made:
        vc_helpers.cleanup(ds)


@pytest.fixture(scope="session")
def e2e_empty_dataset(tmp_root, vc_helpers):
    """A small dataset with no embeddings (for the forms' explanations)."""
    folder = vc_helpers.make_bench(tmp_root / "e2e250", "fmnist", n=250, seed=2, defects=0.1)
    ds, _ = vc_helpers.load_bench_dataset_persistent(folder, E2E_EMPTY_DATASET)
    ds.delete_samples(ds.skip(20))
    yield ds
    vc_helpers.cleanup(ds)


@pytest.fixture(scope="session")
def app_url(artifacts):
    """Starts ``python -m fiftyone.server.main`` (how ``fo.launch_app`` starts its server in
    FiftyOne 1.22) on a free port of 127.0.0.1 and waits until it answers. Datasets created
    later are seen by the App when a page loads them (they must be persistent)."""
    import fiftyone as fo

    # the database service first, from this process: two processes that start it at the same
    # moment race for its data folder, and one of them fails ("failed to bind to port")
    fo.list_datasets()
    port = _free_port()
    log_path = artifacts / "app-server.log"
    log = open(log_path, "w")
    env = dict(os.environ)  # FIFTYONE_DATABASE_NAME, VISUAL_CURATION_LANCEDB_URI, plugins dir
    env["FIFTYONE_SHOW_PROGRESS_BARS"] = "false"
    proc = subprocess.Popen(
        [sys.executable, "-m", "fiftyone.server.main", "--port", str(port),
         "--address", "127.0.0.1"], env=env, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        if not _wait_http(url + "/", proc, SERVER_START_TIMEOUT):
            log.flush()
            raise RuntimeError(f"The FiftyOne App server did not start; see {log_path}:\n"
                               + log_path.read_text()[-3000:])
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium, per test module: Playwright's sync API keeps an asyncio loop running
    in this thread while it is open, and ``fiftyone.operators.execute_operator`` (used by the
    tests that run after these) refuses to ``asyncio.run`` inside a running loop."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed")
    if not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture()
def page(browser, artifacts, request):
    """A fresh page (1600x1000); its console errors are saved next to the screenshots when
    the test fails."""
    context = browser.new_context(viewport={"width": 1600, "height": 1000})
    context.set_default_timeout(30_000)
    pg = context.new_page()
    console = []
    pg.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
    yield pg
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        name = request.node.name
        try:
            pg.screenshot(path=str(artifacts / f"{name}-failure.png"))
        except Exception:  # noqa: BLE001
            pass
        (artifacts / f"{name}-console.log").write_text("\n".join(console))
    context.close()


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)
