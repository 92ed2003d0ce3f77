"""Attacks: what an attacker can do to a model, each a subclass of `Attack`.

Short aliases: ``FGSM`` (linf fast gradient), ``FGM`` (l2), ``PGD`` (linf), ``L2PGD``.
"""

from bastion.attacks.base import Attack
from bastion.attacks.evasion import (
    L0JacobianSaliencyMapAttack,
    L1ProjectedGradientDescentAttack,
    L2APGDCEAttack,
    L2APGDDLRAttack,
    L2APGDTargetedAttack,
    L2BoundaryAttack,
    L2CarliniWagnerAttack,
    L2DeepFoolAttack,
    L2FABAttack,
    L2FABTargetedAttack,
    L2FastGradientAttack,
    L2HopSkipJumpAttack,
    L2ProjectedGradientDescentAttack,
    L2SignOPTAttack,
    L2SimBADCTAttack,
    L2SquareAttack,
    LinfAPGDCEAttack,
    LinfAPGDDLRAttack,
    LinfAPGDTargetedAttack,
    LinfBPDAProjectedGradientDescentAttack,
    LinfDeepFoolAttack,
    LinfEOTProjectedGradientDescentAttack,
    LinfFABAttack,
    LinfFABTargetedAttack,
    LinfFastGradientAttack,
    LinfHopSkipJumpAttack,
    LinfMomentumIterativeAttack,
    LinfNESAttack,
    LinfProjectedGradientDescentAttack,
    LinfSquareAttack,
    LinfTransferMomentumAttack,
    LinfTransferPGDAttack,
)
from bastion.attacks.registry import ATTACKS, get_attack

FGSM = LinfFastGradientAttack
FGM = L2FastGradientAttack
PGD = LinfProjectedGradientDescentAttack
L2PGD = L2ProjectedGradientDescentAttack

__all__ = [
    "ATTACKS",
    "L2APGDCEAttack",
    "L2APGDDLRAttack",
    "L2APGDTargetedAttack",
    "L2CarliniWagnerAttack",
    "L2DeepFoolAttack",
    "L2FABTargetedAttack",
    "LinfAPGDCEAttack",
    "LinfAPGDDLRAttack",
    "LinfAPGDTargetedAttack",
    "LinfDeepFoolAttack",
    "LinfFABTargetedAttack",
    "LinfMomentumIterativeAttack",
    "FGM",
    "FGSM",
    "L2FastGradientAttack",
    "L2PGD",
    "L2ProjectedGradientDescentAttack",
    "LinfFastGradientAttack",
    "LinfProjectedGradientDescentAttack",
    "L2BoundaryAttack",
    "L2HopSkipJumpAttack",
    "L2SimBADCTAttack",
    "L2SquareAttack",
    "LinfHopSkipJumpAttack",
    "LinfNESAttack",
    "LinfSquareAttack",
    "PGD",
    "L0JacobianSaliencyMapAttack",
    "L1ProjectedGradientDescentAttack",
    "L2SignOPTAttack",
    "LinfFABAttack",
    "L2FABAttack",
    "LinfBPDAProjectedGradientDescentAttack",
    "LinfEOTProjectedGradientDescentAttack",
    "LinfTransferMomentumAttack",
    "LinfTransferPGDAttack",
    "Attack",
    "get_attack",
]
