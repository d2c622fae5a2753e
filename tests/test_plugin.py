"""Packaging: the import, the CLI, the plugin as FiftyOne lists it, and a light plugin import."""
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _env():
    env = dict(os.environ)
    plugins = REPO / ".venv" / "fiftyone-plugins"
    if not plugins.exists():
        plugins.mkdir(parents=True)
        (plugins / "visual-curation").symlink_to(REPO)
    env["FIFTYONE_PLUGINS_DIR"] = str(plugins)
    return env


def _run(args):
    return subprocess.run(args, env=_env(), capture_output=True, text=True, timeout=300)


def test_import_is_light_and_exposes_the_api():
    code = ("import sys, visual_curation as vc; "
            "assert 'torch' not in sys.modules and 'open_clip' not in sys.modules; "
            "print(sorted(n for n in ('compute_embeddings','analyze','find_similar','embed_text',"
            "'embed_image','delete_run','extract_core_frames') if callable(getattr(vc, n))))")
    r = _run([sys.executable, "-c", code])
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("'") == 14


def test_fiftyone_lists_the_plugin_and_its_operators():
    fo_cli = [str(Path(sys.executable).with_name("fiftyone"))]
    r = _run(fo_cli + ["plugins", "list"])
    assert r.returncode == 0, r.stderr
    assert "@visual-curation/curation" in r.stdout
    r = _run(fo_cli + ["operators", "list"])
    assert r.returncode == 0, r.stderr
    for name in ("compute_embeddings", "run_analyses", "find_similar", "text_search"):
        assert f"@visual-curation/curation/{name}" in r.stdout, r.stdout


def test_cli_help():
    exe = Path(sys.executable).with_name("visual-curation")
    r = _run([str(exe), "--help"])
    assert r.returncode == 0 and "embed" in r.stdout and "analyze" in r.stdout
    r = _run([str(exe), "embed", "no-such-dataset-xyz", "--model", "demo"])
    assert r.returncode != 0 and "No dataset named" in r.stderr
