"""Carlini-Wagner L2: the smallest l2 change that fools the model, found by optimisation."""

from __future__ import annotations

from typing import ClassVar

import torch

from bastion.attacks.base import Attack
from bastion.core.threat_model import Access, Norm
from bastion.core.validation import check_bool, check_int, check_number
from bastion.models.base import Model

__all__ = ["L2CarliniWagnerAttack"]

# Keeps atanh finite on inputs that sit exactly on the bounds (the authors use 0.999999).
_SHRINK = 0.999999
_NO_UPPER = 1e10


class L2CarliniWagnerAttack(Attack):
    """C&W L2 (Carlini & Wagner, "Towards Evaluating the Robustness of Neural Networks",
    IEEE S&P 2017, Section V-A).

    Minimises ``||x' - x||_2^2 + c * f(x')`` over ``w``, with ``x' = mid + half * tanh(w)``
    so that ``x'`` always lies inside the input bounds (the change of variables), using Adam
    (learning rate ``lr``). ``f`` is the margin loss
    ``max(Z_y - max_{i != y} Z_i, -confidence)`` (untargeted) or
    ``max(max_{i != t} Z_i - Z_t, -confidence)`` (targeted), on logits. A binary search over
    ``c`` per sample (``binary_search_steps`` rounds from ``initial_const``; multiplied by 10
    while no upper bound is known) finds the smallest perturbation that still succeeds with
    margin ``confidence``. Every round restarts from ``x``; with ``abort_early`` a round stops
    when the loss has not fallen by 0.01 % over a tenth of its ``steps``. Defaults follow the
    authors' released code (9 rounds, 10,000 steps, lr 0.01, c = 0.001, confidence 0);
    with 10 rounds or more the last one uses the upper bound of ``c``, as there.

    C&W minimises the perturbation instead of staying inside a budget: ``epsilon`` caps the
    returned example (the base class projects onto the ball), so a sample whose smallest
    adversarial is farther than ``epsilon`` comes back shrunk and usually not adversarial.
    A sample with no adversarial found comes back unchanged.
    """

    id = "cw-l2"
    title = "C&W"
    norm = Norm.L2
    requires: ClassVar[Access] = Access.GRADIENTS
    leaf: ClassVar[str] = "evasion.white-box"

    def __init__(
        self,
        *,
        epsilon: float,
        binary_search_steps: int = 9,
        steps: int = 10_000,
        lr: float = 0.01,
        initial_const: float = 1e-3,
        confidence: float = 0.0,
        abort_early: bool = True,
        batch_size: int = 256,
        seed: int = 0,
    ) -> None:
        super().__init__(epsilon=epsilon, batch_size=batch_size, seed=seed)
        self.binary_search_steps = check_int("binary_search_steps", binary_search_steps, low=1)
        self.steps = check_int("steps", steps, low=1)
        self.lr = check_number("lr", lr, low=0.0, low_open=True)
        self.initial_const = check_number("initial_const", initial_const, low=0.0, low_open=True)
        self.confidence = check_number("confidence", confidence, low=0.0)
        self.abort_early = check_bool("abort_early", abort_early)

    def run(
        self,
        model: Model,
        x: torch.Tensor,
        y: torch.Tensor,
        target: torch.Tensor | None,
        generator: torch.Generator,
    ) -> torch.Tensor:
        low, high = model.bounds
        mid, half = (high + low) / 2.0, (high - low) / 2.0
        w0 = torch.atanh(((x - mid) / half).clamp(-1.0, 1.0) * _SHRINK)
        n = x.shape[0]
        label = target if target is not None else y
        onehot = torch.nn.functional.one_hot(label, model.num_classes).bool()
        const = torch.full((n,), self.initial_const, device=x.device, dtype=x.dtype)
        lower = torch.zeros_like(const)
        upper = torch.full_like(const, _NO_UPPER)
        best_l2 = torch.full_like(const, float("inf"))
        best = x.clone()
        best_label = torch.full_like(label, -1)  # the model's label at best, -1 while unknown
        check_every = max(self.steps // 10, 1)
        # Success needs the margin: the logit of the label is shifted by the confidence.
        push = self.confidence if target is None else -self.confidence
        shift = torch.where(onehot, push, 0.0).to(x.dtype)

        for round_ in range(self.binary_search_steps):
            if self.binary_search_steps >= 10 and round_ == self.binary_search_steps - 1:
                const = torch.where(upper < _NO_UPPER, upper, const)
            w = w0.clone().requires_grad_(True)
            optimizer = torch.optim.Adam([w], lr=self.lr)
            found = torch.zeros(n, dtype=torch.bool, device=x.device)
            previous = float("inf")
            for step in range(self.steps):
                adv = mid + half * torch.tanh(w)
                logits = model.logits(adv)
                l2sq = (adv - x).flatten(1).pow(2).sum(dim=1)
                real = logits[onehot]
                other = logits.masked_fill(onehot, float("-inf")).amax(dim=1)
                margin = other - real if target is not None else real - other
                loss = (l2sq + const * margin.clamp_min(-self.confidence)).sum()
                # Only w's gradient: backward() would also fill the model's parameter grads.
                (w.grad,) = torch.autograd.grad(loss, w)
                optimizer.step()
                with torch.no_grad():
                    # Success with the required confidence, judged at this step's point.
                    pred = (logits.detach() + shift).argmax(dim=1)
                    ok = pred == label if target is not None else pred != label
                    found |= ok
                    better = ok & (l2sq.detach() < best_l2)
                    best_l2 = torch.where(better, l2sq.detach(), best_l2)
                    best[better] = adv.detach()[better]
                    best_label[better] = logits.detach().argmax(dim=1)[better]
                if self.abort_early and step % check_every == 0:
                    value = float(loss.detach())
                    if value > previous * 0.9999:
                        break
                    previous = value
            # Binary search on c: lower it where this round succeeded, raise it elsewhere.
            upper = torch.where(found, torch.minimum(upper, const), upper)
            lower = torch.where(found, lower, torch.maximum(lower, const))
            known = upper < _NO_UPPER
            const = torch.where(known, (lower + upper) / 2.0, const * 10.0)
        self._note_labels(best, best_label)
        return best
