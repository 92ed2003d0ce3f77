"""`FeatureConstraints` as tensors: checking inputs, per-step projection and the final repair.

`ActiveConstraints.compile` binds a `FeatureConstraints` to a model (its input shape, bounds
and device). Gradient attacks call `project_step` and `free_gradient` every iteration (the
continuous part: immutable features and per-feature bounds); `Attack.__call__` calls `repair`
on every returned example (everything, including integer and categorical features).
"""

from __future__ import annotations

import math

import torch

from bastion.attacks import norms
from bastion.core.constraints import FeatureConstraints
from bastion.core.errors import ShapeError, ValidationError
from bastion.core.threat_model import Norm
from bastion.core.validation import describe
from bastion.models.base import Model
from bastion.models.tensors import BOUNDS_TOLERANCE

__all__ = ["ActiveConstraints"]

# Slack on the norm check of a one-hot change, for float rounding of the budget itself.
_NORM_SLACK = 1e-6


class ActiveConstraints:
    """A `FeatureConstraints` compiled for one model: per-feature tensors on its device.

    Build it with `compile`; all methods take batches shaped ``(m, *input_shape)`` (any
    subset of a batch) and work on the flattened features.
    """

    def __init__(self, spec: FeatureConstraints, model: Model) -> None:
        shape = tuple(model.input_shape)
        size = math.prod(shape)
        if spec.num_features != size:
            raise ShapeError(
                f"Expected constraints.num_features to equal the model's {size} input features "
                f"(input shape {shape}), but got num_features={spec.num_features}"
            )
        dev = model.device
        low, high = model.bounds
        self.spec = spec
        self.shape = shape
        lower = _inward(spec.lower, up=True).clamp_min(low)
        upper = _inward(spec.upper, up=False).clamp_max(high)
        empty = torch.nonzero(lower > upper).flatten().tolist()
        if empty:
            i = empty[0]
            raise ValidationError(
                f"Expected the bounds of {spec.name(i)} to overlap the model's bounds "
                f"[{low:g}, {high:g}], but they are [{spec.lower[i]:g}, {spec.upper[i]:g}]"
            )
        self.lower = lower.to(dev)
        self.upper = upper.to(dev)
        self.mutable = torch.ones(size, dtype=torch.float32, device=dev)
        self.mutable[list(spec.immutable)] = 0.0
        self.frozen = torch.tensor(spec.immutable, dtype=torch.long, device=dev)
        self.integer = torch.tensor(spec.integer, dtype=torch.long, device=dev)
        self.coded = [
            (i, torch.tensor(values, dtype=torch.float32, device=dev))
            for i, values in spec.categorical
        ]
        self.groups = [torch.tensor(g, dtype=torch.long, device=dev) for g in spec.one_hot]
        # A category may be chosen only if its one-hot vector lies inside every member's bounds.
        self.allowed = [self._categories(g) for g in self.groups]
        for g, ok in enumerate(self.allowed):
            if not bool(ok.any()):
                raise ValidationError(
                    f"Expected one_hot[{g}] to allow at least one category within the model's "
                    f"bounds [{low:g}, {high:g}] and the per-feature bounds, but none fits"
                )

    def _categories(self, group: torch.Tensor) -> torch.Tensor:
        """Per member: may it be 1 while every other member of the group is 0?"""
        hot = (self.lower[group] <= 1.0) & (self.upper[group] >= 1.0)
        cold = ((self.lower[group] <= 0.0) & (self.upper[group] >= 0.0)).to(torch.int64)
        return hot & (cold.sum() - cold == group.numel() - 1)

    @classmethod
    def compile(cls, spec: object, model: Model) -> ActiveConstraints:
        """Check that ``spec`` is a `FeatureConstraints` that fits ``model``, and bind it."""
        if not isinstance(spec, FeatureConstraints):
            raise ValidationError(
                "Expected constraints to be None or a bastion FeatureConstraints, but got "
                f"{describe('constraints', spec)}"
            )
        return cls(spec, model)

    # --- inputs ------------------------------------------------------------------------
    def check_inputs(self, x: torch.Tensor, name: str = "x") -> None:
        """Raise `ValidationError`, naming the sample and feature, if ``x`` breaks a rule.

        Runs where ``x`` is (the whole input, usually on the CPU), so nothing is moved.
        """
        flat = x.flatten(1)
        dev = flat.device
        spec = self.spec
        lower, upper, integer = self.lower.to(dev), self.upper.to(dev), self.integer.to(dev)

        def first(bad: torch.Tensor) -> tuple[int, int]:
            row, col = (int(v) for v in torch.nonzero(bad)[0])
            return row, col

        for side, bad in (
            ("below its lower bound", flat < lower - BOUNDS_TOLERANCE),
            ("above its upper bound", flat > upper + BOUNDS_TOLERANCE),
        ):
            if bool(bad.any()):
                r, c = first(bad)
                raise ValidationError(
                    f"Expected {name} to satisfy the constraints, but {name}[{r}] has "
                    f"{spec.name(c)} = {float(flat[r, c]):g} {side} "
                    f"[{float(lower[c]):g}, {float(upper[c]):g}]"
                )
        if integer.numel():
            part = flat[:, integer]
            bad = part != part.round()
            if bool(bad.any()):
                r, c = first(bad)
                i = int(integer[c])
                raise ValidationError(
                    f"Expected {name} to satisfy the constraints, but {name}[{r}] has integer "
                    f"{spec.name(i)} = {float(flat[r, i]):g}"
                )
        for i, values in self.coded:
            bad = ~torch.isin(flat[:, i], values.to(dev))
            if bool(bad.any()):
                r = int(torch.nonzero(bad)[0, 0])
                raise ValidationError(
                    f"Expected {name} to satisfy the constraints, but {name}[{r}] has categorical "
                    f"{spec.name(i)} = {float(flat[r, i]):g}, not one of "
                    f"{[float(v) for v in values.tolist()]}"
                )
        for g, group in enumerate(self.groups):
            part = flat[:, group.to(dev)]
            valid = ((part == 0) | (part == 1)).all(dim=1) & (part.sum(dim=1) == 1)
            if not bool(valid.all()):
                r = int(torch.nonzero(~valid)[0, 0])
                members = ", ".join(spec.name(int(i)) for i in group.tolist())
                raise ValidationError(
                    f"Expected {name} to satisfy the constraints, but {name}[{r}] is not one-hot "
                    f"on group one_hot[{g}] ({members}): {part[r].tolist()}"
                )

    # --- per iteration -----------------------------------------------------------------
    def free_gradient(self, grad: torch.Tensor) -> torch.Tensor:
        """``grad`` with the immutable features zeroed, so no step is spent on them."""
        if self.frozen.numel() == 0:
            return grad
        return (grad.flatten(1) * self.mutable).view_as(grad)

    def project_step(self, x: torch.Tensor, adv: torch.Tensor) -> torch.Tensor:
        """Reset the immutable features of ``adv`` to ``x`` and clamp to per-feature bounds.

        Both only move features towards ``x`` (which satisfies the bounds), so an iterate
        inside the epsilon-ball stays inside it.
        """
        flat = adv.flatten(1)
        if self.frozen.numel():
            flat = torch.where(self.mutable.bool(), flat, x.flatten(1))
        flat = torch.maximum(torch.minimum(flat, self.upper), self.lower)
        return flat.reshape(adv.shape)

    # --- final repair ------------------------------------------------------------------
    def repair(
        self, x: torch.Tensor, adv: torch.Tensor, norm: Norm, epsilon: float
    ) -> torch.Tensor:
        """Make every example of ``adv`` satisfy every constraint, inside the epsilon-ball.

        ``adv`` must already be inside the ball and the model's bounds. Immutable features
        are reset and per-feature bounds clamped; an integer feature keeps ``x + trunc(delta)``
        and an integer-coded categorical one the allowed value between ``x`` and ``adv``
        nearest to ``adv`` (both only shrink the change, so the ball holds). A one-hot group
        takes the category with the largest value in ``adv`` among those its bounds allow,
        unless that change would leave the ball; then it keeps the original category.
        """
        xf = x.flatten(1)
        out = self.project_step(x, adv).flatten(1).clone()
        if self.integer.numel():
            cols = self.integer
            out[:, cols] = xf[:, cols] + torch.trunc(out[:, cols] - xf[:, cols])
        for i, values in self.coded:
            a, b = xf[:, i : i + 1], out[:, i : i + 1]
            between = (values >= torch.minimum(a, b)) & (values <= torch.maximum(a, b))
            gap = torch.where(between, (values - b).abs(), torch.inf)
            out[:, i] = values[gap.argmin(dim=1)]
        for group, allowed in zip(self.groups, self.allowed, strict=True):
            part = out[:, group].masked_fill(~allowed, -torch.inf)
            hot = torch.zeros_like(part).scatter_(1, part.argmax(dim=1, keepdim=True), 1.0)
            cand = out.clone()
            cand[:, group] = hot
            size = norms.lp_norm(cand - xf, norm)
            fits = size <= epsilon * (1 + _NORM_SLACK) + _NORM_SLACK
            out[:, group] = torch.where(fits[:, None], hot, xf[:, group])
        return out.reshape(adv.shape)


def _inward(bounds: tuple[float, ...], *, up: bool) -> torch.Tensor:
    """``bounds`` as float32, rounded inwards, so a clamped value obeys the exact bound."""
    exact = torch.tensor(bounds, dtype=torch.float64, device="cpu")
    single = exact.to(torch.float32)
    outside = single.double() < exact if up else single.double() > exact
    step = torch.full_like(single, math.inf if up else -math.inf)
    return torch.where(outside, torch.nextafter(single, step), single)
