"""DeepFool: the smallest step to the nearest linearised decision boundary, repeated."""

from __future__ import annotations

from typing import ClassVar

import torch

from bastion.attacks.base import Attack
from bastion.core.errors import ValidationError
from bastion.core.threat_model import Access, Norm
from bastion.core.validation import check_int, check_number
from bastion.models.base import Model

__all__ = ["L2DeepFoolAttack", "LinfDeepFoolAttack"]

_TINY = 1e-8
# Added to each step's length, as in the authors' code, so a step lands past the boundary.
_NUDGE = 1e-4


class _DeepFool(Attack):
    requires: ClassVar[Access] = Access.GRADIENTS
    leaf: ClassVar[str] = "evasion.white-box"

    def __init__(
        self,
        *,
        epsilon: float,
        steps: int = 50,
        overshoot: float = 0.02,
        classes: int = 10,
        batch_size: int = 256,
        seed: int = 0,
    ) -> None:
        super().__init__(epsilon=epsilon, batch_size=batch_size, seed=seed)
        self.steps = check_int("steps", steps, low=1)
        self.overshoot = check_number("overshoot", overshoot, low=0.0)
        self.classes = check_int("classes", classes, low=2)

    def run(
        self,
        model: Model,
        x: torch.Tensor,
        y: torch.Tensor,
        target: torch.Tensor | None,
        generator: torch.Generator,
    ) -> torch.Tensor:
        if target is not None:
            raise ValidationError(
                f"{type(self).__name__} is untargeted (Moosavi-Dezfooli et al. 2016 define no "
                "targeted variant); use cw-l2 or apgd-t for a targeted attack"
            )
        low, high = model.bounds
        out = x.clone()
        rows = torch.arange(x.shape[0], device=x.device)
        total = torch.zeros_like(x)
        cur = x
        others: torch.Tensor | None = None
        for i in range(self.steps + 1):
            z = cur.detach().requires_grad_(True)
            logits = model.logits(z)
            if others is None:
                # The candidate boundaries: the top classes of the clean logits but the label.
                k = min(self.classes, model.num_classes) - 1
                masked = logits.detach().scatter(1, y[:, None], float("-inf"))
                others = masked.topk(k, dim=1).indices
            out[rows] = cur.detach()
            live = logits.detach().argmax(dim=1) == y[rows]
            if i == self.steps or not bool(live.any()):
                break
            diffs = logits.gather(1, others) - logits.gather(1, y[rows][:, None])  # f'_k
            # All k gradients w'_k in one vectorised backward pass: shape (k, m, *input).
            seeds = torch.eye(diffs.shape[1], device=x.device, dtype=diffs.dtype)
            seeds = seeds[:, None, :].expand(-1, diffs.shape[0], -1)
            (grads,) = torch.autograd.grad(diffs, z, seeds, is_grads_batched=True)
            grads = grads.transpose(0, 1)
            # Samples that crossed a boundary are done; continue with the rest only.
            rows, total, others = rows[live], total[live], others[live]
            step = self._step(diffs.detach()[live].abs(), grads[live].flatten(2))
            total = total + step.view_as(total)
            cur = (x[rows] + (1.0 + self.overshoot) * total).clamp(low, high)
        return out

    def _step(self, f: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError  # pragma: no cover - every concrete class overrides it


class L2DeepFoolAttack(_DeepFool):
    """DeepFool in l2 (Moosavi-Dezfooli, Fawzi, Frossard, "DeepFool: a simple and accurate
    method to fool deep neural networks", CVPR 2016, Algorithm 2).

    Each step moves to the nearest boundary of the linearised classifier,
    ``r = |f'_l| / ||w'_l||^2 * w'_l`` with ``l = argmin_k |f'_k| / ||w'_k||_2``, over the top
    ``classes`` classes of the clean logits (10, as in the authors' code); the sum of the steps
    is scaled by ``1 + overshoot`` (0.02) and the loop stops once the label changes or after
    ``steps`` iterations. The label being moved away from is the true label ``y``, so a sample
    the model already gets wrong is returned unchanged.

    DeepFool looks for a *minimal* perturbation, not one within a budget: ``epsilon`` caps the
    result (the base class projects onto the ball), so a sample whose minimal perturbation is
    larger than ``epsilon`` comes back shrunk and usually not adversarial. Pass a large
    ``epsilon`` to measure minimal perturbations (`AttackResult.norms`). Untargeted only.
    """

    id = "deepfool-l2"
    title = "DeepFool"
    norm = Norm.L2

    def _step(self, f: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        size = w.norm(dim=2) + _TINY
        best = (f / size).argmin(dim=1)
        pick = torch.arange(f.shape[0], device=f.device)
        w_l, f_l, s_l = w[pick, best], f[pick, best], size[pick, best]
        scale: torch.Tensor = (f_l + _NUDGE) / (s_l * s_l)
        return scale[:, None] * w_l


class LinfDeepFoolAttack(_DeepFool):
    """DeepFool in linf (Moosavi-Dezfooli et al., CVPR 2016, Section 3.3 with p = inf).

    As `L2DeepFoolAttack`, with distances ``|f'_k| / ||w'_k||_1`` and steps
    ``r = |f'_l| / ||w'_l||_1 * sign(w'_l)``; ``epsilon`` caps the result the same way.
    """

    id = "deepfool-linf"
    title = "DeepFool"
    norm = Norm.LINF

    def _step(self, f: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        size = w.abs().sum(dim=2) + _TINY
        best = (f / size).argmin(dim=1)
        pick = torch.arange(f.shape[0], device=f.device)
        w_l, f_l, s_l = w[pick, best], f[pick, best], size[pick, best]
        return ((f_l + _NUDGE) / s_l)[:, None] * w_l.sign()
