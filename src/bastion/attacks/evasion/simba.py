"""SimBA-DCT: simple black-box attack along low-frequency DCT directions (l2).

Guo, Gardner, You, Wilson, Weinberger, "Simple Black-box Adversarial Attacks", ICML 2019.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch

from bastion.attacks.base import Attack
from bastion.attacks.evasion._blackbox import QueryTracker, goal_met, image_shape, log_scores
from bastion.core.threat_model import Access, Norm
from bastion.core.validation import check_bool, check_int, check_number
from bastion.models.base import Model

__all__ = ["L2SimBADCTAttack", "dct_matrix", "frequency_order"]


def dct_matrix(size: int, device: torch.device) -> torch.Tensor:
    """The orthonormal DCT-II matrix: row ``k`` is the ``k``-th cosine basis vector."""
    n = torch.arange(size, device=device, dtype=torch.float64)
    k = n[:, None]
    basis = torch.cos(math.pi * (2 * n[None, :] + 1) * k / (2 * size))
    scale = torch.full((size, 1), math.sqrt(2.0 / size), device=device, dtype=torch.float64)
    scale[0] = math.sqrt(1.0 / size)
    return (basis * scale).float()


def frequency_order(
    shape: tuple[int, int, int],
    freq_dims: int,
    stride: int,
    generator: torch.Generator,
    device: torch.device,
) -> torch.Tensor:
    """Indices of the ``(channel, k_h, k_w)`` DCT coordinates in the paper's sampling order.

    The low-frequency block ``max(k_h, k_w) < freq_dims`` comes first in random order, then
    each band of the next ``stride`` frequencies, each band in random order.
    """
    c, h, w = shape
    kh = torch.arange(h, device=device)[:, None].expand(h, w)
    kw = torch.arange(w, device=device)[None, :].expand(h, w)
    top = torch.maximum(kh, kw)
    band = torch.where(top < freq_dims, 0, 1 + (top - freq_dims) // stride).expand(c, h, w)
    key = band.double() + torch.rand((c, h, w), generator=generator, device=device).double()
    return key.flatten().argsort()


class L2SimBADCTAttack(Attack):
    """SimBA-DCT: try +-``step_size`` along one DCT basis direction at a time; keep a step
    that lowers the true class's probability (raises the target's, targeted).

    Guo et al., ICML 2019 (Algorithm 1 with the DCT basis). Directions are the orthonormal
    2-D DCT basis images, low frequencies first: the ``freq_dims`` lowest frequencies in
    random order, then bands of ``stride`` frequencies (defaults 1/8 and 1/32 of the image
    side, the paper's 28 and 7 on 224-pixel ImageNet). Each direction is used at most
    once, so the l2 norm grows by ``step_size`` per accepted step; a candidate that would
    leave the epsilon-ball is not queried. A step costs one or two queries; each sample stops
    once it is misclassified (or reaches the target), after ``max_queries`` queries, or when
    the directions run out. ``stop_at_budget`` as for the Square Attack.
    """

    id = "simba-dct-l2"
    title = "SimBA-DCT"
    norm = Norm.L2
    requires: ClassVar[Access] = Access.SCORES
    leaf: ClassVar[str] = "evasion.score-based"

    def __init__(
        self,
        *,
        epsilon: float,
        step_size: float = 0.2,
        max_queries: int = 10000,
        freq_dims: int | None = None,
        stride: int | None = None,
        stop_at_budget: bool = True,
        batch_size: int = 256,
        seed: int = 0,
    ) -> None:
        super().__init__(epsilon=epsilon, batch_size=batch_size, seed=seed)
        self.step_size = check_number("step_size", step_size, low=0.0, low_open=True)
        self.max_queries = check_int("max_queries", max_queries, low=1)
        self.freq_dims = None if freq_dims is None else check_int("freq_dims", freq_dims, low=1)
        self.stride = None if stride is None else check_int("stride", stride, low=1)
        self.stop_at_budget = check_bool("stop_at_budget", stop_at_budget)

    def run(
        self,
        model: Model,
        x: torch.Tensor,
        y: torch.Tensor,
        target: torch.Tensor | None,
        generator: torch.Generator,
    ) -> torch.Tensor:
        c, h, w = image_shape(self.id, x.shape)
        n = x.shape[0]
        targeted = target is not None
        label = target if target is not None else y
        low, high = model.bounds
        tracker = QueryTracker(model, n, self.max_queries, stop_at_budget=self.stop_at_budget)

        def probs(cand: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
            return torch.softmax(log_scores(model, tracker.scores(cand, idx)), dim=1)

        cur = x.clone()
        prob = torch.zeros(n, model.num_classes, device=x.device)
        done = torch.ones(n, dtype=torch.bool, device=x.device)  # unqueried samples stay put
        first = tracker.afford(torch.arange(n, device=x.device))
        if first.numel() == 0:
            return cur
        prob[first] = probs(x[first], first)
        done[first] = goal_met(prob[first].argmax(dim=1), first, y, target)

        side = min(h, w)
        freq = self.freq_dims if self.freq_dims is not None else max(1, round(side / 8))
        stride = self.stride if self.stride is not None else max(1, round(side / 32))
        order = frequency_order((c, h, w), freq, stride, generator, x.device)
        dct_h, dct_w = dct_matrix(h, x.device), dct_matrix(w, x.device)
        limit = self.epsilon**2 * (1 + 1e-6)
        for coord in order.tolist():
            active = torch.nonzero(~done).squeeze(1)
            active = active[tracker.left(active).to(x.device) > 0]
            if active.numel() == 0 or tracker.exhausted:
                break
            ch, rest = divmod(coord, h * w)
            direction = torch.zeros(c, h, w, device=x.device)
            direction[ch] = torch.outer(dct_h[rest // w], dct_w[rest % w])
            step = (self.step_size * direction).reshape(x.shape[1:])
            for sign in (-1.0, 1.0):
                cand = (cur[active] + sign * step).clamp(low, high)
                fits = (cand - x[active]).flatten(1).pow(2).sum(dim=1) <= limit
                asked = active[fits]
                idx = tracker.afford(asked)
                if idx.numel() == 0:
                    continue
                cand = cand[fits][torch.isin(asked, idx)]
                new = probs(cand, idx)
                old_p = prob[idx].gather(1, label[idx, None]).squeeze(1)
                new_p = new.gather(1, label[idx, None]).squeeze(1)
                better = new_p > old_p if targeted else new_p < old_p
                won = idx[better]
                cur[won] = cand[better]
                prob[won] = new[better]
                done[won] = goal_met(new[better].argmax(dim=1), won, y, target)
                active = active[~torch.isin(active, won)]
                if active.numel() == 0:
                    break
        return cur
