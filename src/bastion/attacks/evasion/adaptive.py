"""Adaptive attacks on defenses that mask gradients: EOT for randomness, BPDA for preprocessing.

Athalye, Carlini & Wagner, "Obfuscated Gradients Give a False Sense of Security: Circumventing
Defenses to Adversarial Examples", ICML 2018. A defense that randomises its forward pass or
puts a non-differentiable transformation in front of the classifier breaks a plain gradient
attack without making the model robust. Both attacks here are linf PGD (Madry et al., ICLR
2018) with the one change the paper prescribes: the gradient of the expectation over the
randomness (EOT), or the gradient through a differentiable approximation of the
transformation (BPDA).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import torch
import torch.nn.functional as F

from bastion.attacks import norms
from bastion.attacks.base import Attack
from bastion.core.threat_model import Access, Norm
from bastion.core.validation import check_bool, check_int, check_number
from bastion.models.base import Model
from bastion.models.preprocessed import PreprocessedModel

__all__ = [
    "L2BPDAProjectedGradientDescentAttack",
    "L2EOTProjectedGradientDescentAttack",
    "LinfBPDAProjectedGradientDescentAttack",
    "LinfEOTProjectedGradientDescentAttack",
]

_Logits = Callable[[torch.Tensor], torch.Tensor]


class _AdaptivePGD(Attack):
    """PGD whose step follows the mean of ``eot_samples`` gradients of `_logits_fn`.

    The step is the gradient normalised in the attack's norm (its sign for linf, unit length
    for l2), then projected onto the epsilon-ball, the input bounds and any tabular
    constraints of the call, as `LinfProjectedGradientDescentAttack` does.
    """

    norm = Norm.LINF
    requires: ClassVar[Access] = Access.GRADIENTS
    leaf: ClassVar[str] = "evasion.adaptive"
    _default_eot: ClassVar[int] = 1

    def __init__(
        self,
        *,
        epsilon: float,
        steps: int = 40,
        stepsize: float | None = None,
        eot_samples: int | None = None,
        random_start: bool = True,
        batch_size: int = 256,
        seed: int = 0,
    ) -> None:
        super().__init__(epsilon=epsilon, batch_size=batch_size, seed=seed)
        self.steps = check_int("steps", steps, low=1)
        if stepsize is None:
            stepsize = 2.5 * self.epsilon / self.steps
        self.stepsize = check_number("stepsize", stepsize, low=0.0)
        if eot_samples is None:
            eot_samples = self._default_eot
        self.eot_samples = check_int("eot_samples", eot_samples, low=1)
        self.random_start = check_bool("random_start", random_start)

    def _logits_fn(self, model: Model) -> _Logits:
        return model.logits

    def _gradient(
        self,
        logits_fn: _Logits,
        adv: torch.Tensor,
        y: torch.Tensor,
        target: torch.Tensor | None,
    ) -> torch.Tensor:
        """The mean over ``eot_samples`` separate forward/backward passes of the loss gradient.

        Separate passes (not one pass over a repeated batch) keep the draws independent even
        for a model that draws its randomness once per forward call.
        """
        total = torch.zeros_like(adv)
        for _ in range(self.eot_samples):
            z = adv.detach().requires_grad_(True)
            logits = logits_fn(z)
            if target is None:
                loss = F.cross_entropy(logits, y, reduction="sum")
            else:
                loss = -F.cross_entropy(logits, target, reduction="sum")
            (grad,) = torch.autograd.grad(loss, z)
            total += grad
        return total / self.eot_samples

    def run(
        self,
        model: Model,
        x: torch.Tensor,
        y: torch.Tensor,
        target: torch.Tensor | None,
        generator: torch.Generator,
    ) -> torch.Tensor:
        bounds = model.bounds
        logits_fn = self._logits_fn(model)
        adv = x
        if self.random_start:
            start = norms.random_start(x.shape, self.norm, self.epsilon, generator, x.device)
            adv = self._project_step(x, x + start, bounds)
        for _ in range(self.steps):
            grad = self._free_gradient(self._gradient(logits_fn, adv, y, target))
            step = norms.normalize_gradient(grad, self.norm)
            adv = self._project_step(x, adv.detach() + self.stepsize * step, bounds)
        return adv


class LinfEOTProjectedGradientDescentAttack(_AdaptivePGD):
    """EOT-PGD (linf): PGD on the expected loss of a randomised model.

    Expectation over Transformation (Athalye, Engstrom, Ilyas, Kwok, "Synthesizing Robust
    Adversarial Examples", ICML 2018), applied to randomised defenses as in Athalye, Carlini &
    Wagner (ICML 2018): each step's gradient is the mean of the loss gradients
    of ``eot_samples`` independent forward/backward passes (default 10), so the step follows
    the gradient of the expected loss rather than of one random draw. Otherwise it is
    `LinfProjectedGradientDescentAttack`: random start in the ball, ``steps`` signed steps of
    ``stepsize`` (default ``2.5 * epsilon / steps``), each projected onto the ball; the last
    iterate is returned. Each step costs ``eot_samples`` gradient queries per sample. On a
    deterministic model every draw is the same and it is plain PGD at ``eot_samples`` times
    the cost.
    """

    id = "eot-pgd-linf"
    title = "EOT-PGD"
    _default_eot: ClassVar[int] = 10


class LinfBPDAProjectedGradientDescentAttack(_AdaptivePGD):
    """BPDA-PGD (linf): PGD that differentiates a stand-in for a non-differentiable input
    transformation.

    Backward Pass Differentiable Approximation (Athalye, Carlini & Wagner, ICML
    2018): the forward pass is the real model, ``f(g(x))``; on the backward pass the
    transformation ``g`` is replaced by a differentiable ``h`` with ``h(x) ~ g(x)``, the
    identity for quantisation-like transformations (straight-through). The model must be a
    `PreprocessedModel`, whose ``approximation`` is ``h``; on any other model there is no
    transformation to bypass and this is linf PGD. ``eot_samples`` (default 1) averages
    several gradients per step, the paper's combination of BPDA and EOT for defenses that
    are both randomised and non-differentiable. Steps, step size and random start as in
    `LinfEOTProjectedGradientDescentAttack`.
    """

    id = "bpda-pgd-linf"
    title = "BPDA-PGD"

    def _logits_fn(self, model: Model) -> _Logits:
        if isinstance(model, PreprocessedModel):
            return model.approximate_logits
        return model.logits


class L2EOTProjectedGradientDescentAttack(LinfEOTProjectedGradientDescentAttack):
    """EOT-PGD (l2): `LinfEOTProjectedGradientDescentAttack` with l2 steps and ball.

    Each step moves ``stepsize`` (default ``2.5 * epsilon / steps``) along the mean gradient
    of ``eot_samples`` passes scaled to unit l2 length, then projects onto the l2 ball
    (Athalye, Engstrom, Ilyas, Kwok, ICML 2018; Athalye, Carlini & Wagner, ICML 2018).
    """

    id = "eot-pgd-l2"
    norm = Norm.L2


class L2BPDAProjectedGradientDescentAttack(LinfBPDAProjectedGradientDescentAttack):
    """BPDA-PGD (l2): `LinfBPDAProjectedGradientDescentAttack` with l2 steps and ball.

    The backward pass goes through the `PreprocessedModel`'s approximation (Athalye, Carlini
    & Wagner, ICML 2018); each step moves ``stepsize`` along the unit-l2 gradient and
    projects onto the l2 ball.
    """

    id = "bpda-pgd-l2"
    norm = Norm.L2
