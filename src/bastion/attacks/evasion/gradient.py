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
    model: Model,
    x: torch.Tensor,
    y: torch.Tensor,
    target: torch.Tensor | None,
    attack: Attack | None = None,
) -> torch.Tensor:
    """Gradient of the attacker's objective: raise the loss of ``y``, or lower ``target``'s.

    With ``attack``, the labels of this forward pass are handed to its base class
    (`Attack._note_labels`), sparing it a forward pass when ``x`` is the clean input.
    """
    z = x.detach().requires_grad_(True)
    logits = model.logits(z)
    if attack is not None and attack._noting:
        attack._note_labels(x, logits.detach().argmax(dim=1))
    if target is None:
        loss = F.cross_entropy(logits, y, reduction="sum")
    else:
        loss = -F.cross_entropy(logits, target, reduction="sum")
    (grad,) = torch.autograd.grad(loss, z)
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
        grad = self._free_gradient(_loss_gradient(model, x, y, target, self))
        adv = x + self.epsilon * norms.normalize_gradient(grad, self.norm)
        return self._project_step(x, adv, model.bounds)


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
        early_stop: bool = False,
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
        self.early_stop = check_bool("early_stop", early_stop)

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
                adv = self._project_step(x, x + start, (low, high))
            if self.early_stop:
                adv = self._descend_until_success(model, x, adv, y, target)
            else:
                for step in range(self.steps):
                    # The first step of the first run without a random start is at x.
                    note = self if step == 0 and restart == 0 and adv is x else None
                    grad = self._free_gradient(_loss_gradient(model, adv, y, target, note))
                    adv = adv + self.stepsize * norms.normalize_gradient(grad, self.norm)
                    adv = self._project_step(x, adv, (low, high))
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

    def _descend_until_success(
        self,
        model: Model,
        x: torch.Tensor,
        adv: torch.Tensor,
        y: torch.Tensor,
        target: torch.Tensor | None,
    ) -> torch.Tensor:
        """The PGD steps with per-sample early stopping: a sample is frozen at the first
        iterate that reaches the goal (seen in the forward pass each step makes anyway) and
        leaves the batch, so later steps cost only the samples still robust."""
        low, high = model.bounds
        out = adv.clone()
        out_label = torch.full_like(y, -1)  # the label at a frozen sample, -1 while live
        rows = torch.arange(x.shape[0], device=x.device)
        for _ in range(self.steps):
            z = adv.detach().requires_grad_(True)
            logits = model.logits(z)
            pred = logits.detach().argmax(dim=1)
            hit = pred == target[rows] if target is not None else pred != y[rows]
            live = ~hit
            if bool(hit.any()):
                out[rows[hit]] = adv[hit].detach()
                out_label[rows[hit]] = pred[hit]
                if not bool(live.any()):
                    self._note_labels(out, out_label)
                    return out
                rows, adv, logits = rows[live], adv[live], logits[live]
            if target is None:
                loss = F.cross_entropy(logits, y[rows], reduction="sum")
            else:
                loss = -F.cross_entropy(logits, target[rows], reduction="sum")
            (grad,) = torch.autograd.grad(loss, z)
            grad = grad[live] if grad.shape[0] != rows.shape[0] else grad
            grad = self._free_gradient(grad)
            x0 = x[rows]
            adv = adv.detach() + self.stepsize * norms.normalize_gradient(grad, self.norm)
            adv = self._project_step(x0, adv, (low, high))
        out[rows] = adv.detach()
        self._note_labels(out, out_label)
        return out


class LinfProjectedGradientDescentAttack(_ProjectedGradientDescent):
    """PGD in linf: signed gradient steps, each projected back onto the epsilon-box.

    Madry, Makelov, Schmidt, Tsipras, Vladu, "Towards Deep Learning Models Resistant to
    Adversarial Attacks", ICLR 2018. Starts uniformly at random inside the ball (as in the
    paper); ``restarts`` repeats from fresh random starts and keeps, per sample, the first
    success. Default step size ``2.5 * epsilon / steps`` lets a run cross the ball
    (the rule of Madry et al.'s robustness library). ``early_stop=True`` freezes each sample
    at its first successful iterate and stops spending queries on it (off by default, as in
    the paper, where every sample runs all steps).
    """

    id = "pgd-linf"
    title = "PGD"
    norm = Norm.LINF


class L2ProjectedGradientDescentAttack(_ProjectedGradientDescent):
    """PGD in l2: steps along the l2-normalised gradient, projected onto the l2 ball.

    Madry et al., ICLR 2018 (l2 threat model as in their released evaluation). The random
    start is uniform in the l2 ball; ``early_stop`` works as in the linf attack.
    """

    id = "pgd-l2"
    title = "PGD"
    norm = Norm.L2
