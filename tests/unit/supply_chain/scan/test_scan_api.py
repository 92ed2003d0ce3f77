"""The scan package's public API: ``__all__`` complete, every public name documented."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import bastion.supply_chain.scan as scan_package


def test_every_public_name_in_every_module_is_documented() -> None:
    for info in pkgutil.iter_modules(scan_package.__path__):
        module = importlib.import_module(f"bastion.supply_chain.scan.{info.name}")
        assert inspect.getdoc(module), info.name
        for attr in getattr(module, "__all__", ()):
            obj = getattr(module, attr)
            if inspect.isclass(obj) or inspect.isfunction(obj):
                assert inspect.getdoc(obj), f"{info.name}.{attr}"
                for meth_name, meth in vars(obj).items() if inspect.isclass(obj) else ():
                    if inspect.isfunction(meth) and not meth_name.startswith("_"):
                        assert inspect.getdoc(meth), f"{info.name}.{attr}.{meth_name}"


def test_package_all_is_complete() -> None:
    public = {
        n
        for n, v in vars(scan_package).items()
        if not n.startswith("_") and (inspect.isclass(v) or inspect.isfunction(v))
    }
    assert public <= set(scan_package.__all__)
