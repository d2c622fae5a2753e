"""Installing the plugin the ways FiftyOne users do, offline.

(a) ``fiftyone plugins download <archive URL>`` + ``fiftyone plugins requirements --install``,
    with the archive (``git archive`` of HEAD) served from a local HTTP server;
(b) a wheel installed with pip into a new virtualenv, then ``visual-curation plugin install``.

Each ends with a fresh Python process that loads the plugin from the plugins folder and lists
every operator of fiftyone.yml and the panels. Subprocesses use their own plugins folder and
database name, never the user's.
"""
import functools
import http.server
import json
import os
import subprocess
import sys
import threading
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PLUGIN = "@visual-curation/curation"
MANIFEST = yaml.safe_load((REPO / "fiftyone.yml").read_text())

# Run in a fresh process: loads every plugin of FIFTYONE_PLUGINS_DIR as the App does and prints
# ours. With argv[1] == "hide-editable", the current venv's editable import hook for
# visual_curation is dropped first, so the plugin must load from its own folder alone.
LIST_PLUGIN = r"""
import importlib.util, json, sys
if sys.argv[1:] == ["hide-editable"]:
    sys.meta_path[:] = [f for f in sys.meta_path
                        if not getattr(f, "__module__", "").startswith("__editable__")]
from fiftyone.operators.registry import OperatorRegistry
reg, name = OperatorRegistry(), "@visual-curation/curation"
ours = [op for op in reg.list_operators() if op.plugin_name == name]
panels = {op.name for op in reg.list_operators(type="panel") if op.plugin_name == name}
vc = importlib.util.find_spec("visual_curation")
print(json.dumps({
    "operators": sorted(op.name for op in ours if op.name not in panels),
    "panels": sorted(panels),
    "files": sorted({sys.modules[type(op).__module__].__file__ for op in ours}),
    "errors": [str(e) for e in reg.list_errors()],
    "visual_curation": vc.origin if vc else None,
}))
"""


def _env(plugins_dir):
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env.update(FIFTYONE_PLUGINS_DIR=str(plugins_dir),
               FIFTYONE_DATABASE_NAME="visual-curation-tests-install",
               FIFTYONE_DO_NOT_TRACK="true", FIFTYONE_DATABASE_VALIDATION="false",
               NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost",
               # pip checks PyPI for a newer pip even when it installs nothing
               PIP_DISABLE_PIP_VERSION_CHECK="1")
    return env


def _run(args, env, **kw):
    r = subprocess.run([str(a) for a in args], env=env, capture_output=True, text=True,
                       timeout=600, **kw)
    assert r.returncode == 0, f"{args}\n{r.stdout}\n{r.stderr}"
    return r


def _assert_lists_plugin(python, env, under, *flags):
    """A fresh ``python`` lists every operator of fiftyone.yml and the panels, loaded from
    files under ``under``."""
    out = json.loads(_run([python, "-c", LIST_PLUGIN, *flags], env).stdout.splitlines()[-1])
    assert out["errors"] == []
    assert out["operators"] == sorted(MANIFEST["operators"])
    assert out["panels"] == sorted(MANIFEST["panels"]) == ["cluster_panel", "sample_panel"]
    under = os.path.realpath(under)
    assert out["files"] and all(
        os.path.realpath(f).startswith(under + os.sep) for f in out["files"]), out["files"]
    return out


def _names(reqs):
    return {str(Requirement(r)).lower().replace("_", "-") for r in reqs}


def test_requirements_txt_matches_pyproject():
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    lines = [ln.split("#")[0].strip() for ln in (REPO / "requirements.txt").read_text().splitlines()]
    assert _names(ln for ln in lines if ln) == _names(deps)


def test_plugin_install_falls_back_when_fiftyone_has_no_plugins_dir(tmp_path, monkeypatch,
                                                                    capsys):
    import fiftyone as fo

    from visual_curation.core import cli

    monkeypatch.setattr(fo.config, "plugins_dir", None)
    monkeypatch.setenv("HOME", str(tmp_path))
    cli.main(["plugin", "install"])
    link = tmp_path / "fiftyone" / "__plugins__" / "visual-curation"
    assert link.is_symlink() and (link / "fiftyone.yml").is_file()
    assert f"FIFTYONE_PLUGINS_DIR={link.parent}" in capsys.readouterr().out


@pytest.fixture(scope="module")
def head_zip(tmp_path_factory):
    """``git archive --format=zip HEAD`` of this repository (what a release archive holds)."""
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    path = tmp_path_factory.mktemp("archive") / "visual-curation.zip"
    _run(["git", "-C", REPO, "archive", "--format=zip", "-o", path, "HEAD"], dict(os.environ))
    return path


@pytest.fixture()
def served(head_zip):
    """The archive's URL on a local HTTP server (a free port on 127.0.0.1)."""
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(head_zip.parent)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/{head_zip.name}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@pytest.mark.slow
def test_fiftyone_plugins_download_and_requirements(served, tmp_path):
    plugins = tmp_path / "plugins"
    env = _env(plugins)
    fo_cli = BIN / "fiftyone"
    # A URL without "github" in it is fetched as an archive (the type from its extension)
    r = _run([fo_cli, "plugins", "download", served], env)
    plugin_dir = plugins / "@visual-curation" / "curation"
    assert (plugin_dir / "fiftyone.yml").is_file(), r.stdout + r.stderr
    assert (plugin_dir / "requirements.txt").is_file()

    # Every requirement is already in this venv: pip must install nothing. PIP_NO_INDEX makes
    # sure it cannot reach an index anyway (else a requirement missing here would be
    # downloaded into the developer's venv instead of failing the test).
    r = _run([fo_cli, "plugins", "requirements", PLUGIN, "--install"],
             dict(env, PIP_NO_INDEX="1"))
    out = r.stdout + r.stderr
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    for dep in deps:
        assert f"Requirement already satisfied: {dep} " in out, out
    assert "Successfully installed" not in out

    # The downloaded copy works on its own: this venv's editable visual_curation is hidden.
    out = _assert_lists_plugin(sys.executable, env, plugin_dir, "hide-editable")
    assert out["visual_curation"] is None


def _shared_site(tmp_path):
    """A folder of links to this venv's packages, minus our own editable install (its
    dist-info, finder and .pth): a new venv reads it through a .pth file, so it has
    fiftyone & co without downloading them, yet does not have visual_curation."""
    import sysconfig

    site = Path(sysconfig.get_paths()["purelib"])
    farm = tmp_path / "shared-site"
    farm.mkdir()
    for entry in site.iterdir():
        n = entry.name
        if n.startswith(("__editable__", "fiftyone_visual_curation")) or n.endswith(".pth"):
            continue
        (farm / n).symlink_to(entry)
    return farm


@pytest.mark.slow
def test_pip_wheel_in_new_venv_then_visual_curation_plugin_install(head_zip, tmp_path):
    import zipfile

    # Build from a clean copy of HEAD: an in-tree build writes build/ and *.egg-info into
    # the checkout, and stale files in build/lib end up in the wheel.
    src = tmp_path / "src"
    zipfile.ZipFile(head_zip).extractall(src)
    env = _env(tmp_path / "plugins")
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
          "--no-index", "-w", tmp_path / "wheels", src], env)
    (wheel,) = (tmp_path / "wheels").glob("fiftyone_visual_curation-*.whl")
    assert "visual_curation/fiftyone.yml" in zipfile.ZipFile(wheel).namelist()

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", venv], env)
    vsite = venv / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"
    (vsite / "_shared_site.pth").write_text(f"{_shared_site(tmp_path)}\n")
    vpy, vbin = venv / "bin" / "python", venv / "bin"
    r = subprocess.run([vpy, "-c", "import visual_curation"], env=env, capture_output=True)
    assert r.returncode != 0  # not yet installed in the new venv
    _run([vbin / "pip", "install", "--no-deps", "--no-index", wheel], env)
    pkg = Path(_run([vpy, "-c", "import visual_curation as v; print(v.__file__)"],
                    env).stdout.strip()).parent
    assert pkg == vsite / "visual_curation"

    vc_cli = vbin / "visual-curation"
    plugins = tmp_path / "plugins"
    out = _run([vc_cli, "plugin", "install", "--plugins-dir", plugins], env).stdout
    link = plugins / "visual-curation"
    assert f"Linked {link} -> {pkg}" in out
    assert link.resolve() == pkg and (link / "fiftyone.yml").is_file()
    assert "Already installed" in _run([vc_cli, "plugin", "install"], env).stdout
    assert _run([vc_cli, "plugin", "path"], env).stdout.strip() == str(pkg)

    out = _assert_lists_plugin(vpy, env, pkg)
    assert Path(out["visual_curation"]).parent == pkg

    assert "Removed" in _run([vc_cli, "plugin", "uninstall"], env).stdout
    assert not link.is_symlink()
