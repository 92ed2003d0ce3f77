"""The attack registry: every attack bastion ships, by id, for the CLI and the conformance kit."""

from __future__ import annotations

from bastion.attacks.base import Attack
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
from bastion.core.validation import check_choice

__all__ = ["ATTACKS", "get_attack"]

ATTACKS: dict[str, type[Attack]] = {
    cls.id: cls
    for cls in (
        LinfFastGradientAttack,
        L2FastGradientAttack,
        LinfProjectedGradientDescentAttack,
        L2ProjectedGradientDescentAttack,
        LinfAPGDCEAttack,
        L2APGDCEAttack,
        LinfAPGDDLRAttack,
        L2APGDDLRAttack,
        LinfAPGDTargetedAttack,
        L2APGDTargetedAttack,
        LinfMomentumIterativeAttack,
        L2DeepFoolAttack,
        LinfDeepFoolAttack,
        LinfFABTargetedAttack,
        L2FABTargetedAttack,
        L2CarliniWagnerAttack,
        LinfSquareAttack,
        L2SquareAttack,
        L2SimBADCTAttack,
        LinfNESAttack,
        L2HopSkipJumpAttack,
        LinfHopSkipJumpAttack,
        L2BoundaryAttack,
        L0JacobianSaliencyMapAttack,
        L1ProjectedGradientDescentAttack,
        L2SignOPTAttack,
        LinfFABAttack,
        L2FABAttack,
        LinfTransferMomentumAttack,
        LinfTransferPGDAttack,
        L2TransferPGDAttack,
        LinfEOTProjectedGradientDescentAttack,
        LinfBPDAProjectedGradientDescentAttack,
        L2EOTProjectedGradientDescentAttack,
        L2BPDAProjectedGradientDescentAttack,
    )
}


def get_attack(attack_id: str) -> type[Attack]:
    """The attack class registered under ``attack_id`` (e.g. ``"pgd-linf"``)."""
    return ATTACKS[check_choice("attack", attack_id, sorted(ATTACKS))]
