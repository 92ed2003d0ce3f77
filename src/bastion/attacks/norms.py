"""Perturbation geometry for each norm: measuring, projecting, and sampling starting points."""

from __future__ import annotations

import math

import torch

from bastion.core.threat_model import Norm

__all__ = [
    "lp_norm",
    "normalize_gradient",
    "project",
    "project_l1_box",
    "random_start",
    "sparse_l1_direction",
]

_TINY = 1e-12


def _flat_norm(t: torch.Tensor, p: float) -> torch.Tensor:
    return torch.linalg.vector_norm(t.flatten(1), ord=p, dim=1)  # type: ignore[no-any-return]


def _view(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.view(-1, *([1] * (like.dim() - 1)))


def lp_norm(delta: torch.Tensor, norm: Norm) -> torch.Tensor:
    """Per-sample size of ``delta`` in ``norm``; shape ``(n,)``."""
    if norm is Norm.LINF:
        return delta.flatten(1).abs().amax(dim=1)
    if norm is Norm.L2:
        return _flat_norm(delta, 2)
    if norm is Norm.L1:
        return delta.flatten(1).abs().sum(dim=1)
    return (delta.flatten(1).abs() > 1e-7).sum(dim=1).to(delta.dtype)


def project(delta: torch.Tensor, norm: Norm, epsilon: float) -> torch.Tensor:
    """Project each sample's perturbation onto the ``epsilon``-ball of ``norm``.

    For l1 it is the exact Euclidean projection (Duchi et al. 2008, see `project_l1_box`);
    for l0 it keeps the ``epsilon`` largest-magnitude coordinates per sample (also exact).
    """
    if norm is Norm.LINF:
        return delta.clamp(-epsilon, epsilon)
    if norm is Norm.L2:
        size = _flat_norm(delta, 2)
        factor = torch.clamp(epsilon / (size + _TINY), max=1.0)
        return delta * _view(factor, delta)
    if norm is Norm.L1:
        return project_l1_box(delta, epsilon)
    k = int(epsilon)
    flat = delta.flatten(1)
    if k >= flat.shape[1]:
        return delta
    if k == 0:
        return torch.zeros_like(delta)
    keep = flat.abs().topk(k, dim=1).indices
    mask = torch.zeros_like(flat).scatter_(1, keep, 1.0)
    return (flat * mask).view_as(delta)


def project_l1_box(
    delta: torch.Tensor,
    epsilon: float,
    lower: torch.Tensor | None = None,
    upper: torch.Tensor | None = None,
) -> torch.Tensor:
    """Exact Euclidean projection of each sample's ``delta`` onto the l1 ball of radius
    ``epsilon``, intersected with the box ``lower <= delta <= upper`` when given.

    Duchi, Shalev-Shwartz, Singer, Chandra, "Efficient Projections onto the l1-Ball for
    Learning in High Dimensions", ICML 2008: the projection is the soft threshold
    ``sign(v) max(|v| - lam, 0)`` with the smallest ``lam >= 0`` that meets the budget, found
    exactly by sorting. With a box (``lower <= 0 <= upper``, e.g. ``bounds - x``) the problem
    stays separable, so the solution is the soft threshold clipped to the box, and ``lam``
    is found the same way over the breakpoints ``|v_i|`` and ``|v_i| - cap_i``, where
    ``f(lam) = sum_i clip(|v_i| - lam, 0, cap_i)`` is piecewise linear.
    """
    flat = delta.flatten(1)
    mag = flat.abs()
    if lower is None or upper is None:
        cap = None
    else:
        cap = torch.where(flat >= 0, upper.flatten(1), -lower.flatten(1)).clamp_min(0.0)
    lam = _l1_threshold(mag, cap, epsilon)
    shrunk = (mag - lam[:, None]).clamp_min(0.0)
    if cap is not None:
        shrunk = torch.minimum(shrunk, cap)
    return (flat.sign() * shrunk).view_as(delta)


def _l1_threshold(mag: torch.Tensor, cap: torch.Tensor | None, epsilon: float) -> torch.Tensor:
    """The smallest ``lam >= 0`` with ``sum_i clip(mag_i - lam, 0, cap_i) <= epsilon``."""
    n = mag.shape[0]
    if cap is None:
        points = mag
        slope = torch.ones_like(mag)
    else:
        # Going down in lam, coordinate i starts growing at |v_i| and stops at |v_i| - cap_i.
        points = torch.cat([mag, mag - cap], dim=1)
        slope = torch.cat([torch.ones_like(mag), -torch.ones_like(mag)], dim=1)
    # Only lam >= 0 matters: breakpoints below 0 move to 0, and 0 itself is one, so that
    # f(0) is evaluated too.
    points = torch.cat([points.clamp_min(0.0), torch.zeros_like(points[:, :1])], dim=1)
    slope = torch.cat([slope, torch.zeros_like(slope[:, :1])], dim=1)
    points, order = points.sort(dim=1, descending=True)
    slope = slope.gather(1, order)
    active = slope.cumsum(dim=1)  # growing coordinates just below each breakpoint
    gaps = points[:, :-1] - points[:, 1:]
    # f at each breakpoint, from the largest (f = 0) downwards.
    start = torch.zeros(n, 1, dtype=mag.dtype, device=mag.device)
    value = torch.cat([start, (active[:, :-1] * gaps).cumsum(dim=1)], dim=1)
    over = value > epsilon
    first = torch.where(over.any(dim=1), over.float().argmax(dim=1), points.shape[1])
    k = (first - 1).clamp_min(0)
    # Between breakpoint k and k + 1 f grows with slope active[k]; solve f(lam) = epsilon.
    base = value.gather(1, k[:, None]).squeeze(1)
    rate = active.gather(1, k[:, None]).squeeze(1).clamp_min(1.0)
    lam = points.gather(1, k[:, None]).squeeze(1) - (epsilon - base) / rate
    # Within the budget even at lam = 0 (f(0) <= epsilon): no shrinking at all.
    lam = torch.where(over.any(dim=1), lam, torch.zeros_like(lam))
    return lam.clamp_min(0.0)


def sparse_l1_direction(
    grad: torch.Tensor, percentile: float, allowed: torch.Tensor | None = None
) -> torch.Tensor:
    """The sparse l1 ascent direction of Tramer & Boneh (NeurIPS 2019, SLIDE): the sign of the
    gradient on the coordinates whose ``|grad|`` is at least its ``percentile``-th percentile
    (per sample: the ``ceil((1 - percentile / 100) d)`` largest, at least one, and any tied
    with the last), zero elsewhere, scaled to unit l1 norm. ``allowed`` (bool, like ``grad``)
    zeroes the gradient on the coordinates it leaves out, before the percentile is taken."""
    flat = grad.flatten(1).abs()
    if allowed is not None:
        flat = flat * allowed.flatten(1)
    # The coordinates at or above the percentile: the ceil((1 - q) d) largest (at least one).
    count = max(1, math.ceil(flat.shape[1] * (1.0 - percentile / 100.0) - 1e-9))
    cut = flat.topk(min(count, flat.shape[1]), dim=1).values[:, -1:]
    chosen = (flat >= cut) & (flat > 0)
    e = grad.flatten(1).sign() * chosen
    e = e / (e.abs().sum(dim=1, keepdim=True) + _TINY)
    return e.view_as(grad)


def normalize_gradient(grad: torch.Tensor, norm: Norm) -> torch.Tensor:
    """The steepest-ascent direction of unit size in ``norm``: sign for linf, unit l2 for l2,
    and for l1 the sign on the largest-magnitude coordinate(s), of unit l1 norm."""
    if norm is Norm.LINF:
        return grad.sign()
    if norm is Norm.L2:
        return grad / _view(_flat_norm(grad, 2) + _TINY, grad)
    if norm is Norm.L1:
        return sparse_l1_direction(grad, 100.0)
    raise ValueError("gradient steps are defined for linf, l2 and l1 only")


def random_start(
    shape: torch.Size, norm: Norm, epsilon: float, generator: torch.Generator, device: torch.device
) -> torch.Tensor:
    """A perturbation drawn uniformly from the ``epsilon``-ball (linf, l2 or l1).

    For l1: ``y / (|y|_1 + z)`` with ``y`` i.i.d. Laplace and ``z`` exponential is uniform in
    the unit l1 ball (Barthe, Guedon, Mendelson, Naor, Ann. Probab. 2005).
    """
    if norm is Norm.LINF:
        u = torch.rand(shape, generator=generator, device=device)
        return (2 * u - 1) * epsilon
    if norm is Norm.L2:
        n = shape[0]
        d = int(torch.Size(shape[1:]).numel())
        direction = torch.randn(shape, generator=generator, device=device)
        direction = direction / _view(_flat_norm(direction, 2) + _TINY, direction)
        radius = torch.rand(n, generator=generator, device=device) ** (1.0 / d) * epsilon
        return direction * _view(radius, direction)
    if norm is Norm.L1:
        n = shape[0]
        u = torch.rand(shape, generator=generator, device=device).clamp_min(_TINY)
        sign = torch.rand(shape, generator=generator, device=device) < 0.5
        laplace = torch.where(sign, -1.0, 1.0) * -u.log()
        z = -torch.rand(n, generator=generator, device=device).clamp_min(_TINY).log()
        size = laplace.flatten(1).abs().sum(dim=1) + z
        return laplace / _view(size, laplace) * epsilon
    raise ValueError("random starts are defined for linf, l2 and l1 only")
