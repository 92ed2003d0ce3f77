"""NES: projected gradient descent on a natural-evolution-strategies gradient estimate (linf).

Ilyas, Engstrom, Athalye, Lin, "Black-box Adversarial Attacks with Limited Queries and
Information", ICML 2018.
"""

from __future__ import annotations

from typing import ClassVar

import torch

from bastion.attacks.base import Attack
from bastion.attacks.evasion._blackbox import QueryTracker, goal_met, log_scores
from bastion.core.errors import ValidationError
from bastion.core.threat_model import Access, Norm
from bastion.core.validation import check_bool, check_int, check_number
from bastion.models.base import Model

__all__ = ["LinfNESAttack"]


class LinfNESAttack(Attack):
    """NES attack: estimate the loss gradient from scores with antithetic Gaussian samples,
    then take a signed (linf PGD) step and project onto the epsilon-box.

    Ilyas et al., ICML 2018 (Algorithm 1, the query-limited setting). The estimate is
    ``g = 1/(2 n sigma) sum_i [F(x + sigma u_i) - F(x - sigma u_i)] u_i`` over ``n = samples/2``
    antithetic pairs, ``F`` the cross-entropy of the target (minimised) or of the true class
    (maximised, untargeted). Paper defaults: ``sigma`` 0.001 and 50 samples per estimate; the
    step ``stepsize`` defaults to ``epsilon / 5`` (the paper's 0.01 at epsilon 0.05). Each step
    costs ``samples + 1`` queries per sample (the extra one checks the new point); a sample
    stops once it succeeds or when its next step would pass ``max_queries``.
    ``stop_at_budget`` as for the Square Attack. With tabular constraints, the search
    directions leave the immutable features alone and every step is projected onto the
    per-feature bounds (the final repair handles integer and categorical features).
    """

    id = "nes-linf"
    title = "NES"
    norm = Norm.LINF
    requires: ClassVar[Access] = Access.SCORES
    leaf: ClassVar[str] = "evasion.score-based"

    def __init__(
        self,
        *,
        epsilon: float,
        max_queries: int = 10000,
        samples: int = 50,
        sigma: float = 0.001,
        stepsize: float | None = None,
        stop_at_budget: bool = True,
        batch_size: int = 256,
        seed: int = 0,
    ) -> None:
        super().__init__(epsilon=epsilon, batch_size=batch_size, seed=seed)
        self.max_queries = check_int("max_queries", max_queries, low=1)
        self.samples = check_int("samples", samples, low=2)
        if self.samples % 2:
            raise ValidationError(
                f"Expected samples to be an even int (antithetic pairs), but got samples={samples}"
            )
        self.sigma = check_number("sigma", sigma, low=0.0, low_open=True)
        if stepsize is None:
            stepsize = self.epsilon / 5
        self.stepsize = check_number("stepsize", stepsize, low=0.0)
        self.stop_at_budget = check_bool("stop_at_budget", stop_at_budget)

    def run(
        self,
        model: Model,
        x: torch.Tensor,
        y: torch.Tensor,
        target: torch.Tensor | None,
        generator: torch.Generator,
    ) -> torch.Tensor:
        n = x.shape[0]
        low, high = model.bounds
        label = target if target is not None else y
        # F is minimised: the target's cross-entropy, or minus the true class's.
        sign = 1.0 if target is not None else -1.0
        tracker = QueryTracker(model, n, self.max_queries, stop_at_budget=self.stop_at_budget)
        pairs = self.samples // 2
        cost = self.samples + 1

        def objective(cand: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
            raw = tracker.scores(cand, idx, per_sample=self.samples)
            logp = torch.log_softmax(log_scores(model, raw), dim=1)
            rows = label[idx].repeat_interleave(self.samples)
            return -sign * logp.gather(1, rows[:, None]).squeeze(1)

        adv = x.clone()
        done = torch.zeros(n, dtype=torch.bool, device=x.device)
        while True:
            idx = tracker.afford(torch.nonzero(~done).squeeze(1), cost)
            if idx.numel() == 0:
                break
            m = idx.numel()
            point = adv[idx]
            u = torch.randn((m, pairs, *x.shape[1:]), generator=generator, device=x.device)
            if self._constraints is not None:  # probe only the features the attacker may change
                u = self._free_gradient(u.reshape(m * pairs, *x.shape[1:])).view_as(u)
            both = torch.cat([point[:, None] + self.sigma * u, point[:, None] - self.sigma * u], 1)
            both = both.clamp(low, high).reshape(m * self.samples, *x.shape[1:])
            values = objective(both, idx).view(m, 2, pairs)
            diff = (values[:, 0] - values[:, 1]).view(m, pairs, *([1] * (x.dim() - 1)))
            grad = (diff * u).sum(dim=1) / (2 * pairs * self.sigma)
            step = point - self.stepsize * grad.sign()
            step = self._project_step(x[idx], step, (low, high))
            adv[idx] = step
            pred = tracker.scores(step, idx).argmax(dim=1)
            done[idx] = goal_met(pred, idx, y, target)
        return adv
