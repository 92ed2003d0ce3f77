"""Attacks: what an attacker can do to a model, each a subclass of `Attack`.

Short aliases: ``FGSM`` (linf fast gradient), ``FGM`` (l2), ``PGD`` (linf), ``L2PGD``.
"""

from bastion.attacks.base import Attack
from bastion.attacks.evasion import (
    L2FastGradientAttack,
    L2ProjectedGradientDescentAttack,
    LinfFastGradientAttack,
    LinfProjectedGradientDescentAttack,
)
from bastion.attacks.registry import ATTACKS, get_attack

FGSM = LinfFastGradientAttack
FGM = L2FastGradientAttack
PGD = LinfProjectedGradientDescentAttack
L2PGD = L2ProjectedGradientDescentAttack

__all__ = [
    "ATTACKS",
    "FGM",
    "FGSM",
    "L2FastGradientAttack",
    "L2PGD",
    "L2ProjectedGradientDescentAttack",
    "LinfFastGradientAttack",
    "LinfProjectedGradientDescentAttack",
    "PGD",
    "Attack",
    "get_attack",
]
