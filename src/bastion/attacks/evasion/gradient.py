"""White-box gradient attacks: the fast gradient method and projected gradient descent."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F

from bastion.attacks import norms
from bastion.attacks.base import Attack
from bastion.core.threat_model import Access, Norm
from bastion.core.validation import check_bool, check_int, check_number
from bastion.models.base import Model

__all__ = [
    "L2FastGradientAttack",
    "L2ProjectedGradientDescentAttack",
    "LinfFastGradientAttack",
    "LinfProjectedGradientDescentAttack",
]


def _loss_gradient(
    model: Model, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None
) -> torch.Tensor:
    """Gradient of the attacker's objective: raise the loss of ``y``, or lower ``target``'s."""
    x = x.detach().requires_grad_(True)
    logits = model.logits(x)
    if target is None:
        loss = F.cross_entropy(logits, y, reduction="sum")
    else:
        loss = -F.cross_entropy(logits, target, reduction="sum")
    (grad,) = torch.autograd.grad(loss, x)
    return grad


class _FastGradient(Attack):
    requires: ClassVar[Access] = Access.GRADIENTS
    leaf: ClassVar[str] = "evasion.white-box"

    def run(
        self,
        model: Model,
        x: torch.Tensor,
        y: torch.Tensor,
        target: torch.Tensor | None,
        generator: torch.Generator,
    ) -> torch.Tensor:
        grad = _loss_gradient(model, x, y, target)
        return x + self.epsilon * norms.normalize_gradient(grad, self.norm)


class LinfFastGradientAttack(_FastGradient):
    """FGSM: one step of size epsilon along the sign of the loss gradient.

    Goodfellow, Shlens, Szegedy, "Explaining and Harnessing Adversarial Examples", ICLR 2015.
    """

    id = "fgsm-linf"
    title = "FGSM"
    norm = Norm.LINF


class L2FastGradientAttack(_FastGradient):
    """FGM (l2): one step of l2 length epsilon along the normalised loss gradient.

    The l2 variant of Goodfellow et al. (ICLR 2015), as defined by Miyato et al.,
    "Adversarial Training Methods for Semi-Supervised Text Classification", ICLR 2017.
    """

    id = "fgm-l2"
    title = "FGM"
    norm = Norm.L2


class _ProjectedGradientDescent(Attack):
    requires: ClassVar[Access] = Access.GRADIENTS
    leaf: ClassVar[str] = "evasion.white-box"

    def __init__(
        self,
        *,
        epsilon: float,
        steps: int = 40,
        stepsize: float | None = None,
        random_start: bool = True,
        restarts: int = 1,
        batch_size: int = 256,
        seed: int = 0,
    ) -> None:
        super().__init__(epsilon=epsilon, batch_size=batch_size, seed=seed)
        self.steps = check_int("steps", steps, low=1)
        if stepsize is None:
            stepsize = 2.5 * self.epsilon / self.steps
        self.stepsize = check_number("stepsize", stepsize, low=0.0)
        self.random_start = check_bool("random_start", random_start)
        self.restarts = check_int("restarts", restarts, low=1)

    def run(
        self,
        model: Model,
        x: torch.Tensor,
        y: torch.Tensor,
        target: torch.Tensor | None,
        generator: torch.Generator,
    ) -> torch.Tensor:
        low, high = model.bounds
        best = x.clone()
        done = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
        for restart in range(self.restarts):
            adv = x
            if self.random_start:
                start = norms.random_start(x.shape, self.norm, self.epsilon, generator, x.device)
                adv = (x + start).clamp(low, high)
            for _ in range(self.steps):
                grad = _loss_gradient(model, adv, y, target)
                adv = adv + self.stepsize * norms.normalize_gradient(grad, self.norm)
                adv = (x + norms.project(adv - x, self.norm, self.epsilon)).clamp(low, high)
            if self.restarts == 1:
                return adv
            # Keep, per sample, the first restart that succeeds; otherwise the last one.
            with torch.no_grad():
                pred = model.logits(adv).argmax(dim=1)
            hit = pred == target if target is not None else pred != y
            take = ~done & (hit | (restart == self.restarts - 1))
            best[take] = adv[take]
            done |= hit
        return best


class LinfProjectedGradientDescentAttack(_ProjectedGradientDescent):
    """PGD in linf: signed gradient steps, each projected back onto the epsilon-box.

    Madry, Makelov, Schmidt, Tsipras, Vladu, "Towards Deep Learning Models Resistant to
    Adversarial Attacks", ICLR 2018. Starts uniformly at random inside the ball (as in the
    paper); ``restarts`` repeats from fresh random starts and keeps, per sample, the first
    success. Default step size ``2.5 * epsilon / steps`` lets a run cross the ball
    (the rule of Madry et al.'s robustness library).
    """

    id = "pgd-linf"
    title = "PGD"
    norm = Norm.LINF


class L2ProjectedGradientDescentAttack(_ProjectedGradientDescent):
    """PGD in l2: steps along the l2-normalised gradient, projected onto the l2 ball.

    Madry et al., ICLR 2018 (l2 threat model as in their released evaluation). The random
    start is uniform in the l2 ball.
    """

    id = "pgd-l2"
    title = "PGD"
    norm = Norm.L2
