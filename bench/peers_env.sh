#!/usr/bin/env bash
# Builds bench/.venv-peers: the peer tools whose pins clash with the main venv.
#
#   bash bench/peers_env.sh            # idempotent; returns at once when the venv is complete
#   PEERS_VENV=/elsewhere bash bench/peers_env.sh
#
# fastdup 2.54 pins numpy<2, Pillow==10.3.0, scikit-learn==1.5.0, joblib~=1.2, tqdm==4.66.3,
# setuptools==78.1.1, sentry-sdk==2.27.0, while the main venv has numpy 2.x, Pillow 13,
# scikit-learn 1.9. cleanvision 0.3.7 and cleanlab 2.9.0 live beside it so that all peers
# run in one subprocess (bench/peers_worker.py). Only PyPI wheels are used; fastdup ships
# its own ONNX model inside the wheel, so nothing is fetched at run time.
set -euo pipefail
cd "$(dirname "$0")"
VENV="${PEERS_VENV:-.venv-peers}"
PY="${PEERS_PYTHON:-python3.11}"
PKGS=(fastdup==2.54 cleanvision==0.3.7 cleanlab==2.9.0)
STAMP="$VENV/.peers-ok"
WANT="${PKGS[*]}"

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" && -x "$VENV/bin/python" ]]; then
    exit 0
fi

if ! command -v "$PY" >/dev/null 2>&1; then
    PY=python3
fi
ver="$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
case "$ver" in
    3.10|3.11|3.12) ;;
    *) echo "peers_env: need Python 3.10-3.12 for the fastdup wheels, found $ver ($PY)" >&2; exit 1 ;;
esac

echo "peers_env: building $VENV with $PY ($ver): $WANT" >&2
[[ -x "$VENV/bin/python" ]] || "$PY" -m venv "$VENV"
echo '*' > "$VENV/.gitignore"   # the venv ignores itself (as Python >= 3.13's venv does)
# (grep drops pip's notes about the machine's empty extra local indexes)
"$VENV/bin/python" -m pip install -q --disable-pip-version-check "${PKGS[@]}" \
    2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
SENTRY_OPT_OUT=1 "$VENV/bin/python" - <<'EOF'
import fastdup, cleanvision, cleanlab, numpy, sklearn
print("peers_env: fastdup", fastdup.__version__, "cleanvision", cleanvision.__version__,
      "cleanlab", cleanlab.__version__, "numpy", numpy.__version__, "sklearn", sklearn.__version__)
EOF
echo "$WANT" > "$STAMP"
