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
# Foolbox pulls eagerpy and, at import, GitPython (for its model zoo) with gitdb and smmap;
# none of them needs torch, but --no-deps keeps pip from touching the CPU torch build.
pip install --no-deps "foolbox>=3.3" "eagerpy>=0.30" GitPython gitdb smmap
# The model-file scanners bastion is compared with; their optional ML extras are not needed.
pip install --no-deps picklescan modelscan fickling tomlkit
