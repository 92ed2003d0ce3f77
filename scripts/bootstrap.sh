#!/usr/bin/env bash
# Create .venv with bastion and its development tools. Idempotent: re-runs only when
# pyproject.toml changed. Installs the CPU build of torch first, so the project's own
# `torch>=2.3` range is already met and pip never pulls a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
stamp="$VENV/.bastion-installed"
want=$(sha256sum pyproject.toml | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$VENV/bin/python" ]; then
  exit 0
fi
echo "bootstrap: creating $VENV (one time)" >&2
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
# This machine's pip configuration names local mirrors that warn for every package they lack.
pip() {
  "$VENV/bin/python" -m pip --disable-pip-version-check -q "$@" 2> >(grep -v '^WARNING: Location' >&2)
}
# The CPU wheel of this version lies on the machine's disk; elsewhere the range will do.
pip install "torch==2.13.0" 2>/dev/null || pip install "torch>=2.3"
pip install -e ".[dev,onnx,gateway]"
echo "$want" > "$stamp"
