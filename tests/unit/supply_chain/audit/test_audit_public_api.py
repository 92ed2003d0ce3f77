"""The audit package and the manifest module export every public name, each documented."""

import importlib
import inspect

import pytest


@pytest.mark.parametrize("name", ["bastion.supply_chain.audit", "bastion.supply_chain.manifest"])
def test_all_is_complete_and_documented(name: str) -> None:
    module = importlib.import_module(name)
    exported = set(module.__all__)
    assert len(exported) == len(module.__all__)
    for attr in exported:
        obj = getattr(module, attr)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert inspect.getdoc(obj), f"{name}.{attr} has no docstring"
    public = {
        n
        for n, v in vars(module).items()
        if not n.startswith("_")
        and (inspect.isclass(v) or inspect.isfunction(v))
        and getattr(v, "__module__", "").startswith(name)
    }
    assert public <= exported
