"""Each package's __all__ is complete and every public name has a docstring."""

import importlib
import inspect

import pytest

PACKAGES = [
    "bastion.core",
    "bastion.models",
    "bastion.data",
    "bastion.attacks",
    "bastion.reports",
    "bastion.assessment",
    "bastion.testing",
    "bastion.supply_chain",
    "bastion.defenses.guards",
    "bastion.gateway",
]


@pytest.mark.parametrize("name", PACKAGES)
def test_all_lists_every_public_name_and_each_is_documented(name: str) -> None:
    module = importlib.import_module(name)
    exported = set(module.__all__)
    assert len(exported) == len(module.__all__), "duplicates in __all__"
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
    assert public <= exported, f"public but not in __all__: {sorted(public - exported)}"
