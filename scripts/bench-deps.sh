#!/usr/bin/env bash
# Peer libraries for `make bench`. torchattacks declares torchvision, which would replace the
# CPU torch build with a multi-GB CUDA one; it imports fine without it, so install it alone.
set -euo pipefail
cd "$(dirname "$0")/.."
pip() {
  .venv/bin/python -m pip --disable-pip-version-check -q "$@" 2> >(grep -v '^WARNING: Location' >&2)
}
pip install -e ".[bench]"
pip install --no-deps "torchattacks>=3.5"
# The model-file scanners bastion is compared with; their optional ML extras are not needed.
pip install --no-deps picklescan modelscan fickling tomlkit
