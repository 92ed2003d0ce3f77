"""The package's public surface: complete __all__, docstrings, and the layer rule."""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys

import bastion.data

SUBMODULES = ["datasets", "embedded", "files", "images", "validation", "zoo"]


def test_all_reexports_every_submodule_name_with_a_docstring() -> None:
    exported = set(bastion.data.__all__)
    for sub in SUBMODULES:
        module = importlib.import_module(f"bastion.data.{sub}")
        missing = set(module.__all__) - exported
        assert not missing, f"bastion.data.{sub} exports {missing} but bastion.data does not"
    for name in bastion.data.__all__:
        obj = getattr(bastion.data, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert inspect.getdoc(obj), name
            for attr, member in vars(obj).items():
                if inspect.isfunction(member) and not attr.startswith("_"):
                    assert inspect.getdoc(member), f"{name}.{attr}"


def test_checks_hold_under_python_dash_o_and_data_imports_no_higher_layer() -> None:
    """One interpreter (imports are slow) checks both: raises survive ``-O``, and importing
    bastion.data pulls in nothing from bastion but core (the layer rule)."""
    code = (
        "import sys\n"
        "import numpy as np\n"
        "from bastion.core.errors import BoundsError, NonFiniteError\n"
        "from bastion.data import validate_features\n"
        "bad = [m for m in sys.modules if m.startswith('bastion.')\n"
        "       and not m.startswith(('bastion.core', 'bastion.data', 'bastion._version'))]\n"
        "if bad:\n"
        "    raise SystemExit(f'bastion.data imported {bad}')\n"
        "for kw, x, err in [({}, [[float('nan')]], NonFiniteError),\n"
        "                   ({'bounds': (0, 1)}, [[2.0]], BoundsError)]:\n"
        "    try:\n"
        "        validate_features(np.array(x), **kw)\n"
        "    except err:\n"
        "        continue\n"
        "    raise SystemExit(f'{err.__name__} not raised under -O')\n"
    )
    result = subprocess.run(
        [sys.executable, "-O", "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
