"""Evasion attacks: inputs changed within a budget so that the model gets them wrong."""

from bastion.attacks.evasion.gradient import (
    L2FastGradientAttack,
    L2ProjectedGradientDescentAttack,
    LinfFastGradientAttack,
    LinfProjectedGradientDescentAttack,
)

__all__ = [
    "L2FastGradientAttack",
    "L2ProjectedGradientDescentAttack",
    "LinfFastGradientAttack",
    "LinfProjectedGradientDescentAttack",
]
