"""The attack registry: every attack bastion ships, by id, for the CLI and the conformance kit."""

from __future__ import annotations

from bastion.attacks.base import Attack
from bastion.attacks.evasion.gradient import (
    L2FastGradientAttack,
    L2ProjectedGradientDescentAttack,
    LinfFastGradientAttack,
    LinfProjectedGradientDescentAttack,
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
    )
}


def get_attack(attack_id: str) -> type[Attack]:
    """The attack class registered under ``attack_id`` (e.g. ``"pgd-linf"``)."""
    return ATTACKS[check_choice("attack", attack_id, sorted(ATTACKS))]
