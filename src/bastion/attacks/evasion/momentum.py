"""MI-FGSM: iterative fast gradient sign steps driven by an accumulated, l1-normalised gradient."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F

from bastion.attacks.base import Attack
from bastion.core.threat_model import Access, Norm
from bastion.core.validation import check_int, check_number
from bastion.models.base import Model

__all__ = ["LinfMomentumIterativeAttack"]


class LinfMomentumIterativeAttack(Attack):
    """MI-FGSM in linf (Dong, Liao, Pang, Su, Zhu, Hu, Li, "Boosting Adversarial Attacks with
    Momentum", CVPR 2018, Algorithm 1).

    ``g_{t+1} = mu * g_t + grad / ||grad||_1`` and ``x_{t+1} = clip(x_t + a * sign(g_{t+1}))``
    with ``a = epsilon / steps``, starting from the clean input; the paper's defaults are
    ``steps = 10`` and ``decay = 1.0`` (``decay = 0`` gives I-FGSM). Targeted: descends the
    cross-entropy of the target. The momentum makes the examples transfer better to other
    models, which is why the transfer attacks use it.
    """

    id = "mifgsm-linf"
    title = "MI-FGSM"
    norm = Norm.LINF
    requires: ClassVar[Access] = Access.GRADIENTS
    leaf: ClassVar[str] = "evasion.white-box"

    def __init__(
        self,
        *,
        epsilon: float,
        steps: int = 10,
        decay: float = 1.0,
        stepsize: float | None = None,
        batch_size: int = 256,
        seed: int = 0,
    ) -> None:
        super().__init__(epsilon=epsilon, batch_size=batch_size, seed=seed)
        self.steps = check_int("steps", steps, low=1)
        self.decay = check_number("decay", decay, low=0.0)
        if stepsize is None:
            stepsize = self.epsilon / self.steps
        self.stepsize = check_number("stepsize", stepsize, low=0.0)

    def run(
        self,
        model: Model,
        x: torch.Tensor,
        y: torch.Tensor,
        target: torch.Tensor | None,
        generator: torch.Generator,
    ) -> torch.Tensor:
        low, high = model.bounds
        adv = x
        g = torch.zeros_like(x)
        shape = (-1,) + (1,) * (x.dim() - 1)
        for step in range(self.steps):
            z = adv.detach().requires_grad_(True)
            logits = model.logits(z)
            if step == 0 and self._noting:  # at the clean input: spares a forward pass
                self._note_labels(x, logits.detach().argmax(dim=1))
            if target is None:
                loss = F.cross_entropy(logits, y, reduction="sum")
            else:
                loss = -F.cross_entropy(logits, target, reduction="sum")
            (grad,) = torch.autograd.grad(loss, z)
            grad = self._free_gradient(grad)
            l1 = grad.flatten(1).abs().sum(dim=1).clamp_min(1e-12)
            g = self.decay * g + grad / l1.view(shape)
            adv = adv.detach() + self.stepsize * g.sign()
            adv = self._project_step(x, adv, (low, high))
        return adv
