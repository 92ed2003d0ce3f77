"""JSMA: the Jacobian-based Saliency Map Attack, a targeted l0 attack on pairs of features."""

from __future__ import annotations

from typing import ClassVar

import torch

from bastion.attacks.base import Attack
from bastion.core.errors import ValidationError
from bastion.core.threat_model import Access, Norm
from bastion.core.validation import check_bool, check_number, fail
from bastion.models.base import Model

__all__ = ["L0JacobianSaliencyMapAttack"]


class L0JacobianSaliencyMapAttack(Attack):
    """JSMA: change few input features, two at a time, chosen by a saliency map.

    Papernot, McDaniel, Jha, Fredrikson, Celik, Swami, "The Limitations of Deep Learning in
    Adversarial Settings", IEEE EuroS&P 2016 (Algorithms 1 and 3, the pairwise saliency map
    of eq. 10). Each iteration computes the forward derivative of the logits ``Z`` (the
    paper's choice of the last layer before the softmax; Carlini & Wagner, IEEE S&P 2017,
    call this JSMA-Z) or, with ``use_probabilities=True``, of the softmax output (their
    JSMA-F; much stronger on the embedded digits CNN, see tests/quality):
    ``a_i = dZ_t/dx_i`` for the target ``t`` and ``b_i = sum_{j != t} dZ_j/dx_i``. Over pairs
    ``(p, q)`` of features still in the search domain, with ``A = a_p + a_q`` and
    ``B = b_p + b_q``, it picks the pair maximising ``A * |B|`` among those with ``A > 0`` and
    ``B < 0`` (for ``theta < 0``: ``A < 0`` and ``B > 0``), and moves both features by
    ``theta`` (clipped to the bounds). A feature leaves the search domain once it reaches the
    bound ``theta`` pushes it to; features already there are never in it. A sample stops at
    its target, when no pair qualifies or its domain empties, or before changing more than
    ``min(floor(gamma * d), epsilon)`` features (``d`` features per input).

    Args:
        epsilon: the l0 budget, a whole number of features (also capped by ``gamma``).
        theta: the change made to a chosen feature, as a fraction of the input range
            (``+1``: set to the maximum, as in the paper's MNIST experiments; ``-1``: to the
            minimum).
        gamma: the largest fraction of features changed (the paper's maximum distortion
            Upsilon; 14.5 % on MNIST).
        use_probabilities: differentiate the softmax probabilities instead of the logits.

    Untargeted use (no ``target``): each sample is attacked towards the class its clean
    logits rank second (the closest class by score), a choice of this implementation, since
    the paper defines only the targeted attack; such a sample stops at any wrong label.
    Each iteration is one forward pass (which also checks the goal) and two backward passes.
    """

    id = "jsma-l0"
    title = "JSMA"
    norm = Norm.L0
    requires: ClassVar[Access] = Access.GRADIENTS
    leaf: ClassVar[str] = "evasion.white-box"

    def __init__(
        self,
        *,
        epsilon: float,
        theta: float = 1.0,
        gamma: float = 0.145,
        use_probabilities: bool = False,
        batch_size: int = 256,
        seed: int = 0,
    ) -> None:
        super().__init__(epsilon=epsilon, batch_size=batch_size, seed=seed)
        if self.epsilon != int(self.epsilon):
            raise fail("epsilon", "a whole number of features for the l0 norm", epsilon)
        self.theta = check_number("theta", theta, low=-1.0, high=1.0)
        if self.theta == 0:
            raise fail("theta", "a nonzero number in [-1, 1]", theta)
        self.gamma = check_number("gamma", gamma, low=0.0, high=1.0, low_open=True)
        self.use_probabilities = check_bool("use_probabilities", use_probabilities)

    def run(
        self,
        model: Model,
        x: torch.Tensor,
        y: torch.Tensor,
        target: torch.Tensor | None,
        generator: torch.Generator,
    ) -> torch.Tensor:
        low, high = model.bounds
        n = x.shape[0]
        d = x[0].numel()
        if model.num_classes < 2:
            raise ValidationError("JSMA needs a model with at least 2 classes")
        limit = min(int(self.gamma * d), int(self.epsilon))
        flat = x.flatten(1)
        adv = flat.clone()
        up = self.theta > 0
        edge = high if up else low
        domain = flat < edge if up else flat > edge
        changed = torch.zeros_like(domain)
        rows = torch.arange(n, device=x.device)
        goal = target
        step = self.theta * (high - low)
        while rows.numel() > 0:
            z = adv[rows].view(-1, *x.shape[1:]).detach().requires_grad_(True)
            logits = model.logits(z)
            if goal is None:
                # First pass: untargeted samples aim at their clean runner-up class.
                runner_up = logits.detach().scatter(1, y[rows, None], float("-inf"))
                goal = runner_up.argmax(dim=1)
            t = goal[rows]
            pred = logits.detach().argmax(dim=1)
            reached = pred == t if target is not None else pred != y[rows]
            out = logits.softmax(dim=1) if self.use_probabilities else logits
            z_t = out.gather(1, t[:, None]).sum()
            (a,) = torch.autograd.grad(z_t, z, retain_graph=True)
            (total,) = torch.autograd.grad(out.sum(), z)
            a = a.flatten(1)
            best, found = _best_pairs(a, total.flatten(1) - a, domain[rows], up)
            p, q = best // d, best % d
            grown = changed[rows].clone()
            grown[torch.arange(rows.numel(), device=x.device), p] = True
            grown[torch.arange(rows.numel(), device=x.device), q] = True
            fits = grown.sum(dim=1) <= limit
            go = ~reached & found & fits
            rows, p, q, grown = rows[go], p[go], q[go], grown[go]
            if rows.numel() == 0:
                break
            for f in (p, q):
                moved = (adv[rows, f] + step).clamp(low, high)
                adv[rows, f] = moved
                at_edge = moved >= high if up else moved <= low
                domain[rows, f] &= ~at_edge
            changed[rows] = grown
        return adv.view_as(x)


_PAIR_BLOCK = 1 << 24  # pair scores held at once


def _best_pairs(
    a: torch.Tensor, b: torch.Tensor, domain: torch.Tensor, up: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row, the flat index ``p * d + q`` of the pair maximising the saliency map (eq. 10)
    and whether any pair qualifies; computed in blocks of rows to bound memory."""
    m, d = a.shape
    best = torch.zeros(m, dtype=torch.long, device=a.device)
    found = torch.zeros(m, dtype=torch.bool, device=a.device)
    distinct = ~torch.eye(d, dtype=torch.bool, device=a.device)
    block = max(1, _PAIR_BLOCK // (d * d))
    for start in range(0, m, block):
        sl = slice(start, start + block)
        big_a = a[sl, :, None] + a[sl, None, :]
        big_b = b[sl, :, None] + b[sl, None, :]
        valid = (big_a > 0) & (big_b < 0) if up else (big_a < 0) & (big_b > 0)
        valid &= domain[sl, :, None] & domain[sl, None, :] & distinct
        score = torch.where(valid, (big_a * big_b).abs(), torch.full_like(big_a, -1.0))
        score = score.flatten(1)
        best[sl] = score.argmax(dim=1)
        found[sl] = score.gather(1, best[sl, None]).squeeze(1) >= 0
    return best, found
