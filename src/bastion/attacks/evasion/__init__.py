"""Evasion attacks: inputs changed within a budget so that the model gets them wrong."""

from bastion.attacks.evasion.adaptive import (
    L2BPDAProjectedGradientDescentAttack,
    L2EOTProjectedGradientDescentAttack,
    LinfBPDAProjectedGradientDescentAttack,
    LinfEOTProjectedGradientDescentAttack,
)
from bastion.attacks.evasion.apgd import (
    L2APGDCEAttack,
    L2APGDDLRAttack,
    L2APGDTargetedAttack,
    LinfAPGDCEAttack,
    LinfAPGDDLRAttack,
    LinfAPGDTargetedAttack,
)
from bastion.attacks.evasion.boundary import L2BoundaryAttack
from bastion.attacks.evasion.cw import L2CarliniWagnerAttack
from bastion.attacks.evasion.deepfool import L2DeepFoolAttack, LinfDeepFoolAttack
from bastion.attacks.evasion.fab import (
    L2FABAttack,
    L2FABTargetedAttack,
    LinfFABAttack,
    LinfFABTargetedAttack,
)
from bastion.attacks.evasion.gradient import (
    L2FastGradientAttack,
    L2ProjectedGradientDescentAttack,
    LinfFastGradientAttack,
    LinfProjectedGradientDescentAttack,
)
from bastion.attacks.evasion.hopskipjump import L2HopSkipJumpAttack, LinfHopSkipJumpAttack
from bastion.attacks.evasion.jsma import L0JacobianSaliencyMapAttack
from bastion.attacks.evasion.momentum import LinfMomentumIterativeAttack
from bastion.attacks.evasion.nes import LinfNESAttack
from bastion.attacks.evasion.pgd_l1 import L1ProjectedGradientDescentAttack
from bastion.attacks.evasion.signopt import L2SignOPTAttack
from bastion.attacks.evasion.simba import L2SimBADCTAttack
from bastion.attacks.evasion.square import L2SquareAttack, LinfSquareAttack
from bastion.attacks.evasion.transfer import (
    L2TransferPGDAttack,
    LinfTransferMomentumAttack,
    LinfTransferPGDAttack,
)

__all__ = [
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
    "L2FastGradientAttack",
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
    "L0JacobianSaliencyMapAttack",
    "L1ProjectedGradientDescentAttack",
    "L2SignOPTAttack",
    "LinfFABAttack",
    "L2FABAttack",
    "LinfBPDAProjectedGradientDescentAttack",
    "L2BPDAProjectedGradientDescentAttack",
    "L2EOTProjectedGradientDescentAttack",
    "LinfEOTProjectedGradientDescentAttack",
    "LinfTransferMomentumAttack",
    "LinfTransferPGDAttack",
    "L2TransferPGDAttack",
]
