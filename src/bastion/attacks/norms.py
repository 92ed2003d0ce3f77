"""Perturbation geometry for each norm: measuring, projecting, and sampling starting points."""

from __future__ import annotations

import torch

from bastion.core.threat_model import Norm

__all__ = ["lp_norm", "project", "random_start", "normalize_gradient"]

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
    return (delta.flatten(1).abs() > 1e-7).sum(dim=1).to(delta.dtype)


def project(delta: torch.Tensor, norm: Norm, epsilon: float) -> torch.Tensor:
    """Project each sample's perturbation onto the ``epsilon``-ball of ``norm``.

    For l0 it keeps the ``epsilon`` largest-magnitude coordinates per sample.
    """
    if norm is Norm.LINF:
        return delta.clamp(-epsilon, epsilon)
    if norm is Norm.L2:
        size = _flat_norm(delta, 2)
        factor = torch.clamp(epsilon / (size + _TINY), max=1.0)
        return delta * _view(factor, delta)
    k = int(epsilon)
    flat = delta.flatten(1)
    if k >= flat.shape[1]:
        return delta
    if k == 0:
        return torch.zeros_like(delta)
    keep = flat.abs().topk(k, dim=1).indices
    mask = torch.zeros_like(flat).scatter_(1, keep, 1.0)
    return (flat * mask).view_as(delta)


def normalize_gradient(grad: torch.Tensor, norm: Norm) -> torch.Tensor:
    """The steepest-ascent direction of unit size in ``norm`` (sign for linf, unit l2 for l2)."""
    if norm is Norm.LINF:
        return grad.sign()
    if norm is Norm.L2:
        return grad / _view(_flat_norm(grad, 2) + _TINY, grad)
    raise ValueError("gradient steps are defined for linf and l2 only")


def random_start(
    shape: torch.Size, norm: Norm, epsilon: float, generator: torch.Generator, device: torch.device
) -> torch.Tensor:
    """A perturbation drawn uniformly from the ``epsilon``-ball (linf or l2)."""
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
    raise ValueError("random starts are defined for linf and l2 only")
