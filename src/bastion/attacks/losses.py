"""Losses attacks maximise, shared across attack families."""

from __future__ import annotations

import torch

__all__ = ["dlr_loss", "targeted_dlr_loss"]

_TINY = 1e-12


def dlr_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Difference of Logits Ratio (Croce & Hein 2020, eq. 5), per sample, to maximise.

    ``-(z_y - max_{i != y} z_i) / (z_pi1 - z_pi3)``: invariant to shifting and rescaling the
    logits, so it does not vanish on models with saturated softmax. Needs 3 classes or more.
    """
    ordered, order = logits.sort(dim=1, descending=True)
    z_y = logits.gather(1, y[:, None]).squeeze(1)
    best_other = torch.where(order[:, 0] == y, ordered[:, 1], ordered[:, 0])
    return -(z_y - best_other) / (ordered[:, 0] - ordered[:, 2] + _TINY)


def targeted_dlr_loss(logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Targeted DLR (Croce & Hein 2020, eq. 6), to maximise: ``-(z_y - z_t) / (z_pi1 -
    (z_pi3 + z_pi4) / 2)``. Needs 4 classes or more."""
    ordered = logits.sort(dim=1, descending=True).values
    z_y = logits.gather(1, y[:, None]).squeeze(1)
    z_t = logits.gather(1, target[:, None]).squeeze(1)
    return -(z_y - z_t) / (ordered[:, 0] - 0.5 * (ordered[:, 2] + ordered[:, 3]) + _TINY)
