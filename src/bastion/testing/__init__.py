"""The conformance kit: contracts every attack and adapter must keep, for any test suite.

``check_attack(attack, model, x, y)`` and ``check_adapter(model, x)`` raise
`ConformanceError` naming the broken property.
"""

from bastion.testing.adapters import ConformanceError, check_adapter
from bastion.testing.attacks import check_attack

__all__ = ["ConformanceError", "check_adapter", "check_attack"]
