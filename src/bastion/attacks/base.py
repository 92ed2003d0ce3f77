"""The `Attack` base class: one template method that every attack inherits unchanged.

``Attack.__call__`` is final. It checks the model's access, the inputs (shape, finiteness,
bounds), the labels and targets; walks the data in batches on the model's device; calls the
subclass's `run`; then clips to the input bounds, projects onto the epsilon-ball, measures
success with uncharged queries, and returns an `AttackResult`. A new attack writes only
``run`` and its ``__init__`` (keyword-only hyperparameters, validated there).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from typing import Any, ClassVar, final

import torch

from bastion.attacks import norms
from bastion.core.errors import AccessError, ValidationError
from bastion.core.results import AttackResult
from bastion.core.threat_model import Access, Norm, ThreatModel
from bastion.core.validation import check_int, check_number, describe
from bastion.models.base import Model
from bastion.models.tensors import as_batch, as_labels, check_in_bounds

__all__ = ["Attack"]


class Attack(ABC):
    """Base class of every evasion attack.

    Class attributes a subclass sets:
        id: the registry id, e.g. ``"pgd-linf"``.
        norm: the norm its budget is measured in.
        requires: the least access it needs (``gradients`` for white-box attacks).
        leaf: the attack-tree leaf a success demonstrates, e.g. ``"evasion.white-box"``.
        title: the short name people know it by, e.g. ``"PGD"``.

    Args (keyword-only, shared by all attacks):
        epsilon: the perturbation budget in ``norm``, in input units.
        batch_size: samples attacked at once on the model's device.
        seed: seeds the attack's own random generator; the global RNG is never touched.
    """

    id: ClassVar[str]
    norm: ClassVar[Norm]
    requires: ClassVar[Access]
    leaf: ClassVar[str]
    title: ClassVar[str]

    def __init__(self, *, epsilon: float, batch_size: int = 256, seed: int = 0) -> None:
        self.epsilon = check_number("epsilon", epsilon, low=0.0)
        self.batch_size = check_int("batch_size", batch_size, low=1)
        self.seed = check_int("seed", seed, low=0)

    # --- what a subclass writes ----------------------------------------------------------
    @abstractmethod
    def run(
        self,
        model: Model,
        x: torch.Tensor,
        y: torch.Tensor,
        target: torch.Tensor | None,
        generator: torch.Generator,
    ) -> torch.Tensor:
        """Return adversarial inputs for one batch on the model's device.

        ``y`` holds the true labels; ``target`` the wanted labels of a targeted attack (else
        None). The base class clips and projects whatever is returned, so a slightly
        out-of-budget result is repaired, never trusted.
        """

    def params(self) -> dict[str, Any]:
        """The hyperparameters, JSON-ready, for reports."""
        return {k: v for k, v in vars(self).items() if not k.startswith("_") and _json_scalar(v)}

    # --- the template method -------------------------------------------------------------
    @final
    def __call__(self, model: Model, x: Any, y: Any, *, target: Any = None) -> AttackResult:
        """Attack ``x`` (true labels ``y``; optional ``target`` labels) and report the outcome."""
        if not isinstance(model, Model):
            raise ValidationError(
                "Expected model to be a bastion Model (wrap it with an adapter such as "
                f"TorchModel or SklearnModel), but got {describe('model', model)}"
            )
        if not model.access.grants(self.requires):
            raise AccessError(
                f"{type(self).__name__} needs '{self.requires.value}' access, but the model "
                f"grants only '{model.access.value}'; use an attack for "
                f"'{model.access.value}' access or a model that exposes more"
            )
        xs = as_batch(x, model.input_shape)
        check_in_bounds(xs, model.bounds)
        n = xs.shape[0]
        ys = as_labels(y, n, model.num_classes)
        targets = None
        if target is not None:
            targets = as_labels(target, n, model.num_classes, name="target")
            same = int((targets == ys).sum())
            if same:
                raise ValidationError(
                    f"Expected target to differ from y for every sample, but {same} sample(s) "
                    "have target == y"
                )
        threat = self.threat_model(model.bounds, targeted=targets is not None, access=model.access)

        generator = torch.Generator(device=model.device)
        generator.manual_seed(self.seed)
        queries_before = model.counter.count
        started = time.perf_counter()
        pieces = []
        for start in range(0, n, self.batch_size):
            stop = start + self.batch_size
            xb = xs[start:stop].to(model.device)
            yb = ys[start:stop].to(model.device)
            tb = None if targets is None else targets[start:stop].to(model.device)
            adv = self.run(model, xb, yb, tb, generator).detach()
            pieces.append(self._repair(xb, adv, model.bounds).cpu())
        seconds = time.perf_counter() - started
        queries = model.counter.count - queries_before
        x_adv = torch.cat(pieces)

        with model.counter.paused():
            clean_pred = model.labels(xs)
            adv_pred = model.labels(x_adv)
        success = adv_pred == targets if targets is not None else adv_pred != ys
        return AttackResult(
            attack=self.id,
            threat_model=threat,
            x_adv=x_adv,
            success=success,
            clean_correct=clean_pred == ys,
            norms=norms.lp_norm(x_adv - xs, self.norm),
            queries=queries,
            seconds=seconds,
            params=self.params(),
        )

    def threat_model(
        self,
        bounds: tuple[float, float] = (0.0, 1.0),
        *,
        targeted: bool = False,
        access: Access | None = None,
    ) -> ThreatModel:
        """The threat model this attack realises against a model with ``bounds``."""
        return ThreatModel(
            norm=self.norm,
            epsilon=self.epsilon,
            bounds=bounds,
            targeted=targeted,
            access=access or self.requires,
        )

    def _repair(
        self, x: torch.Tensor, adv: torch.Tensor, bounds: tuple[float, float]
    ) -> torch.Tensor:
        if adv.shape != x.shape:
            raise ValidationError(
                f"{type(self).__name__}.run returned shape {tuple(adv.shape)}, "
                f"expected {tuple(x.shape)}"
            )
        adv = torch.where(torch.isfinite(adv), adv, x)
        delta = norms.project(adv - x, self.norm, self.epsilon)
        return (x + delta).clamp(*bounds)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"


def _json_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))
