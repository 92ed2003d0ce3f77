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
    of eq. 10). Each iteration computes the forward derivative of the softmax output (the
    default, ``use_probabilities=True``; Carlini & Wagner, IEEE S&P 2017, call this JSMA-F)
    or, with ``use_probabilities=False``, of the logits ``Z`` (their JSMA-Z). JSMA-F is the
    default because it is much stronger on both embedded digits CNNs (tests/quality,
    bench/new_attacks.py: 99 % against 47 % targeted success at 8x8):
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
        use_probabilities: differentiate the softmax probabilities (JSMA-F, the default);
            False differentiates the logits (JSMA-Z).

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
        use_probabilities: bool = True,
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
_TILE = 128  # first features of a pair scored per tile


def _best_pairs(
    a: torch.Tensor, b: torch.Tensor, domain: torch.Tensor, up: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row, the flat index ``p * d + q`` (``p < q``) of the pair maximising the saliency
    map (eq. 10), the first such pair in that order on ties, and whether any pair qualifies.

    Only pairs ``p < q`` are scored (the map is symmetric), a tile of ``p`` at a time against
    every ``q`` from the tile's start, in blocks of rows to bound memory. A feature outside
    the search domain has its ``a`` set to an infinity that fails the sign test of every pair
    it is in, so the domain costs no pairwise mask. A row with no qualifying pair gets 0.
    """
    m, d = a.shape
    dev = a.device
    best = torch.zeros(m, dtype=torch.long, device=dev)
    found = torch.zeros(m, dtype=torch.bool, device=dev)
    a = a.masked_fill(~domain, float("-inf") if up else float("inf"))
    feat = torch.arange(d, device=dev)
    tile = min(_TILE, d)
    block = max(1, _PAIR_BLOCK // (tile * d))
    for start in range(0, m, block):
        ra, rb = a[start : start + block], b[start : start + block]
        vals, flats = [], []
        for p0 in range(0, d, tile):
            p1 = min(p0 + tile, d)
            big_a = ra[:, p0:p1, None] + ra[:, None, p0:]
            big_b = rb[:, p0:p1, None] + rb[:, None, p0:]
            valid = big_a > 0 if up else big_a < 0
            valid &= big_b < 0 if up else big_b > 0
            valid &= feat[p0:p1, None] < feat[None, p0:]
            score = big_a.mul_(big_b).abs_().masked_fill_(~valid, -1.0)
            val, k = score.flatten(1).max(dim=1)
            width = d - p0
            vals.append(val)
            flats.append((k // width + p0) * d + k % width + p0)
        val_t, flat_t = torch.stack(vals, dim=1), torch.stack(flats, dim=1)
        top = val_t.max(dim=1, keepdim=True).values
        # Ties across tiles: the smallest flat index, as a single argmax over p * d + q would.
        best[start : start + block] = torch.where(val_t == top, flat_t, d * d).min(dim=1).values
        found[start : start + block] = top.squeeze(1) >= 0
    return best, found
