"""The `Attack` base class: template methods that every attack inherits unchanged.

``Attack.__call__`` is final. It checks the model's access, the inputs (shape, finiteness,
bounds, and the optional tabular `FeatureConstraints`), the labels and targets; walks the data
in batches on the model's device; calls the subclass's `run`; then clips to the input bounds,
projects onto the epsilon-ball, repairs the constraints, measures success with uncharged
queries, and returns an `AttackResult`. ``Attack.generate`` (also final) does the same up to
the repair and returns only the examples. A new attack writes only ``run`` and its
``__init__`` (keyword-only hyperparameters, validated there); it may hand over labels it
already computed (`Attack._note_labels`) to spare the base class those uncharged forward
passes.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from typing import Any, ClassVar, NamedTuple, final

import torch

from bastion.attacks import norms
from bastion.attacks._budget import BudgetWatched, stopped_samples, watch_budget, watching
from bastion.attacks._notes import Note, known, version
from bastion.attacks.constraints import ActiveConstraints
from bastion.core.constraints import FeatureConstraints
from bastion.core.errors import AccessError, QueryBudgetExceeded, ValidationError
from bastion.core.results import AttackResult
from bastion.core.threat_model import Access, Norm, ThreatModel
from bastion.core.validation import check_int, check_number, describe
from bastion.models.base import BaseModel, Model
from bastion.models.tensors import all_finite, as_batch, as_labels, check_in_bounds
from bastion.models.torch_model import TorchModel

__all__ = ["Attack", "BudgetWatched", "watch_budget"]


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

    Tabular constraints (``constraints=`` of the call, a `FeatureConstraints`): the inputs
    must satisfy them (else `ValidationError` naming the sample and feature). Every attack,
    black-box included, gets the final repair on each returned example: immutable features
    reset to the clean value, per-feature bounds clamped, integer features set to
    ``x + trunc(delta)`` and integer-coded categorical features to the allowed value between
    the clean and the adversarial value nearest the latter (both stay inside the ball), and
    each one-hot group projected to a valid one-hot (the original category when the change
    would leave the ball). Success is measured after the repair. The continuous part
    (immutable features and per-feature bounds) is also enforced at every iteration by the
    attacks that call `_project_step` and `_free_gradient` (FGSM/FGM, PGD in every norm,
    APGD, MI-FGSM, EOT/BPDA-PGD, NES), and at every query of the decision-based attacks, whose
    label oracle projects each point first (HopSkipJump, Boundary, Sign-OPT); while a call
    runs, `run` finds the compiled constraints in ``self._constraints``.
    """

    id: ClassVar[str]
    norm: ClassVar[Norm]
    requires: ClassVar[Access]
    leaf: ClassVar[str]
    title: ClassVar[str]

    # The constraints of the call now running (None outside a call or without constraints).
    _constraints: ActiveConstraints | None = None
    # The labels `run` handed over for the batch now running (None when they are not used).
    _notes: list[Note] | None = None

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
        out-of-budget result is repaired, never trusted; so are the tabular constraints.
        """

    def params(self) -> dict[str, Any]:
        """The hyperparameters, JSON-ready, for reports."""
        return {k: v for k, v in vars(self).items() if not k.startswith("_") and _json_scalar(v)}

    # --- the template methods ------------------------------------------------------------
    @final
    def __call__(
        self,
        model: Model,
        x: Any,
        y: Any,
        *,
        target: Any = None,
        constraints: FeatureConstraints | None = None,
    ) -> AttackResult:
        """Attack ``x`` (true labels ``y``; optional ``target`` labels) and report the outcome.

        ``constraints`` (tabular inputs) restricts which changes count: see the class
        docstring for where each rule is enforced. Success and clean correctness are measured
        on exactly the returned examples with uncharged forward passes (spared for the rows
        whose labels the attack already saw); `generate` skips that measurement.
        """
        crafted = self._craft(model, x, y, target, constraints)
        xs, ys, targets, x_adv = crafted.x, crafted.y, crafted.target, crafted.x_adv

        # Success is measured on exactly the returned x_adv, uncharged, in one forward pass
        # over every row whose label `run` did not hand over.
        clean_pred, clean_done = crafted.clean_labels
        adv_pred, adv_done = crafted.adv_labels
        todo = torch.cat([xs[~clean_done], x_adv[~adv_done]])
        if todo.shape[0]:
            with model.counter.paused():
                got = model.labels(todo)
            split = int((~clean_done).sum())
            clean_pred[~clean_done] = got[:split]
            adv_pred[~adv_done] = got[split:]
        success = adv_pred == targets if targets is not None else adv_pred != ys
        return AttackResult(
            attack=self.id,
            threat_model=crafted.threat,
            x_adv=x_adv,
            success=success,
            clean_correct=clean_pred == ys,
            norms=norms.lp_norm(x_adv - xs, self.norm),
            queries=crafted.queries,
            seconds=crafted.seconds,
            params=self.params(),
            budget_exhausted=bool((crafted.stopped & ~success.cpu()).any()),
            unattacked=crafted.unattacked,
        )

    @final
    def generate(
        self,
        model: Model,
        x: Any,
        y: Any,
        *,
        target: Any = None,
        constraints: FeatureConstraints | None = None,
    ) -> torch.Tensor:
        """Only the adversarial examples of ``x``: what `__call__` returns as ``x_adv``.

        The same checks, batches, projection and constraint repair as `__call__`, bit for
        bit the same examples for the same seed, but no success measurement: the extra
        forward pass over the returned examples (and, after a random start, over the clean
        inputs) is skipped. For loops that only need the examples, such as adversarial
        training; call the attack itself to learn which samples it won, and whether a query
        budget left the examples partial (``budget_exhausted``, ``unattacked``). Returns
        float32 on the CPU, like ``AttackResult.x_adv``.
        """
        return self._craft(model, x, y, target, constraints, measure=False).x_adv

    def _craft(
        self,
        model: Model,
        x: Any,
        y: Any,
        target: Any,
        constraints: FeatureConstraints | None,
        *,
        measure: bool = True,
    ) -> _Crafted:
        """Validate the call, run the attack batch by batch, repair, and gather what it saw.

        Without ``measure`` (`generate`), `run` hears no labels and none are gathered.
        """
        # The Protocol check is slow (tens of microseconds); every adapter derives BaseModel.
        if not isinstance(model, BaseModel) and not isinstance(model, Model):
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
        active = None
        if constraints is not None:
            active = ActiveConstraints.compile(constraints, model)
            active.check_inputs(xs)
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
        stopped = []
        known_clean: list[tuple[torch.Tensor, torch.Tensor]] = []
        known_adv: list[tuple[torch.Tensor, torch.Tensor]] = []
        # Labels handed over by `run` stand in for the base class's own forward pass only on
        # a plain TorchModel, whose labels are by definition the argmax of its logits.
        reuse = measure and type(model) is TorchModel
        unattacked = 0
        self._constraints = active
        try:
            for start in range(0, n, self.batch_size):
                stop = start + self.batch_size
                xb = xs[start:stop].to(model.device)
                yb = ys[start:stop].to(model.device)
                tb = None if targets is None else targets[start:stop].to(model.device)
                self._notes = [] if reuse else None
                try:
                    with watching() as watched:
                        adv = self.run(model, xb, yb, tb, generator).detach()
                except QueryBudgetExceeded:
                    # The model's budget ran out inside this batch. With earlier batches
                    # done, keep their work: the rest is returned unattacked (see `_Crafted`).
                    if start == 0:
                        raise
                    unattacked = n - start
                    break
                fixed = self._repair(xb, adv, model.bounds)
                notes, self._notes = self._notes or [], None
                if measure:
                    known_clean.append(known(notes, xb))
                    known_adv.append(known(notes, fixed))
                pieces.append(fixed.cpu())
                stopped.append(stopped_samples(watched, xb.shape[0]))
        finally:
            self._constraints = None
            self._notes = None
        seconds = time.perf_counter() - started
        if unattacked:
            rest = xs[n - unattacked :].cpu()
            pieces.append(rest.clone())
            stopped.append(torch.ones(unattacked, dtype=torch.bool, device="cpu"))
            unknown = (
                torch.zeros(unattacked, dtype=torch.int64, device="cpu"),
                torch.zeros(unattacked, dtype=torch.bool, device="cpu"),
            )
            if measure:
                known_clean.append(unknown)
                known_adv.append(unknown)
        return _Crafted(
            x=xs.cpu(),
            y=ys.cpu(),
            target=None if targets is None else targets.cpu(),
            x_adv=torch.cat(pieces),
            threat=threat,
            queries=model.counter.count - queries_before,
            seconds=seconds,
            clean_labels=_joined(known_clean),
            adv_labels=_joined(known_adv),
            stopped=torch.cat(stopped),
            unattacked=unattacked,
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
        if not all_finite(adv):
            adv = torch.where(torch.isfinite(adv), adv, x)
        active = self._constraints
        if active is not None:
            adv = active.project_step(x, adv)
        delta = norms.project(adv - x, self.norm, self.epsilon)
        adv = (x + delta).clamp(*bounds)
        if active is not None:
            adv = active.repair(x, adv, self.norm, self.epsilon)
        return adv

    # --- helpers for iterative attacks ---------------------------------------------------
    @property
    def _noting(self) -> bool:
        """Whether `_note_labels` is heard now (a call measuring success on a TorchModel);
        lets `run` skip computing labels nobody will read, as under `generate`."""
        return self._notes is not None

    def _note_labels(self, points: torch.Tensor, labels: torch.Tensor) -> None:
        """Hand over the labels (argmax of the logits) `run` saw the model give at ``points``.

        ``points`` is shaped like the batch ``x`` of `run`: the clean input itself, or the
        tensor `run` returns. After the repair the base class skips its own uncharged forward
        pass for every row whose point is bit for bit the clean input or the returned example
        (a row the repair changed is measured as usual), so success is still judged on
        exactly what is returned. A label of -1 marks a row whose label is unknown. Used only
        while a call runs on a plain `TorchModel`; a note whose ``points`` were later changed
        in place is ignored.
        """
        notes = self._notes
        if notes is None or points.shape[:1] != labels.shape:
            return
        if points.requires_grad:
            points = points.detach()
        notes.append(Note(points, labels.detach().clone(), version(points)))

    def _project_step(
        self, x: torch.Tensor, adv: torch.Tensor, bounds: tuple[float, float]
    ) -> torch.Tensor:
        """Project an iterate onto what the attacker may reach from ``x``.

        Resets immutable features, projects onto the epsilon-ball, clamps to the model's
        ``bounds`` and to the per-feature bounds of the active constraints. ``x`` and ``adv``
        may be any matching subset of the batch.
        """
        active = self._constraints
        if active is not None:
            adv = active.project_step(x, adv)
        adv = (x + norms.project(adv - x, self.norm, self.epsilon)).clamp(*bounds)
        if active is not None:
            adv = active.project_step(x, adv)
        return adv

    def _free_gradient(self, grad: torch.Tensor) -> torch.Tensor:
        """``grad`` with the immutable features zeroed (unchanged without constraints)."""
        active = self._constraints
        return grad if active is None else active.free_gradient(grad)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"


def _joined(parts: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """The per-batch (labels, known) pairs as one pair (empty when nothing was gathered)."""
    if not parts:
        return (
            torch.zeros(0, dtype=torch.int64, device="cpu"),
            torch.zeros(0, dtype=torch.bool, device="cpu"),
        )
    labels, done = zip(*parts, strict=True)
    return torch.cat(labels), torch.cat(done)


class _Crafted(NamedTuple):
    """What one crafting pass hands to `Attack.__call__` (all tensors on the CPU)."""

    x: torch.Tensor
    y: torch.Tensor
    target: torch.Tensor | None
    x_adv: torch.Tensor
    threat: ThreatModel
    queries: int
    seconds: float
    clean_labels: tuple[torch.Tensor, torch.Tensor]  # labels, and which rows are known
    adv_labels: tuple[torch.Tensor, torch.Tensor]
    stopped: torch.Tensor  # per sample: did a query budget stop it?
    # The last rows, never attacked: the model's query budget ran out in an earlier batch.
    # Their x_adv is the clean input; with no batch finished the call raises instead.
    unattacked: int = 0


def _json_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))
