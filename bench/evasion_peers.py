"""The peer libraries' runs for ``bench/evasion.py``: torchattacks, ART and Foolbox.

Each ``add_*`` function adds, to the cases bastion defined, a run for every attack the library
implements, with the same budget; a library that is not installed is skipped with a note.
Every run returns adversarial images in ``[0, 1]`` as a float32 tensor.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from bastion.core.threat_model import Norm
from bastion.data import ZooEntry

Run = Callable[[], torch.Tensor]


@dataclass
class Case:
    """One row group of the table: an attack's label, its norm and budget, and the runs."""

    label: str
    norm: Norm
    eps: float
    runs: dict[str, Run] = field(default_factory=dict)


class Normalize(torch.nn.Module):
    """Subtracts a per-channel mean and divides by a std: the zoo's normalisation as a layer."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        self.mean, self.std = mean, std

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return (z - self.mean) / self.std


def _wrapped(entry: ZooEntry) -> torch.nn.Module:
    """The network with the normalisation inside, so every library works in [0, 1] pixels.

    With torchattacks' own ``set_normalization_used``, its APGD measures epsilon in normalised
    units and returns perturbations up to epsilon / std, which the projection would undo.
    """
    assert entry.mean is not None and entry.std is not None
    shift = torch.tensor(entry.mean, dtype=torch.float32).view(-1, 1, 1)
    scale = torch.tensor(entry.std, dtype=torch.float32).view(-1, 1, 1)
    return torch.nn.Sequential(Normalize(shift, scale), entry.model).eval()


# (linf, l2) epsilon per model, the same in every library. Chosen so that APGD-CE leaves
# about a fifth of the digits robust: attacks of different strength then show different
# robust accuracies instead of all reaching 0 %. The 8x8 budgets are the ones the earlier
# tables used; the 32x32 model is less robust in linf, and its images have a larger l2 norm.
EPSILONS = {"digits-cnn": (0.15, 1.0), "digits32-cnn": (0.1, 2.0)}


def epsilons(entry: ZooEntry) -> tuple[float, float]:
    """The ``(linf, l2)`` budgets for a zoo model of the table."""
    return EPSILONS[entry.name]


def add_torchattacks(
    cases: dict[str, Case], entry: ZooEntry, x: torch.Tensor, y: torch.Tensor, budget: Any
) -> None:
    """torchattacks: every attack of the table; its C&W has no binary search (see below)."""
    try:
        import torchattacks
    except ImportError:
        print("torchattacks not installed; skipped", file=sys.stderr)
        return
    b, module, (linf, l2) = budget, _wrapped(entry), epsilons(entry)
    steps = b.pgd_steps
    apgdt = torchattacks.APGDT(module, eps=linf, steps=b.apgd_steps, n_classes=10)
    apgdt.n_target_classes = b.targets
    fab = torchattacks.FAB(module, eps=linf, steps=b.fab_steps, multi_targeted=True, n_classes=10)
    fab.n_target_classes = b.targets
    table = {
        "fgsm": torchattacks.FGSM(module, eps=linf),
        "pgd-linf": torchattacks.PGD(module, eps=linf, alpha=2.5 * linf / steps, steps=steps),
        "pgd-l2": torchattacks.PGDL2(module, eps=l2, alpha=2.5 * l2 / steps, steps=steps),
        "apgd-ce": torchattacks.APGD(module, eps=linf, steps=b.apgd_steps, loss="ce"),
        "apgd-dlr": torchattacks.APGD(module, eps=linf, steps=b.apgd_steps, loss="dlr"),
        "apgd-t": apgdt,
        "fab-t": fab,
        "mi-fgsm": torchattacks.MIFGSM(module, eps=linf, alpha=linf / b.mi_steps, steps=b.mi_steps),
        "deepfool": torchattacks.DeepFool(module, steps=b.deepfool_steps),
        # torchattacks' C&W has no binary search: one run of all the steps at c, which also
        # stops once the total loss rises between two checks a tenth of the steps apart.
        "cw": torchattacks.CW(module, c=b.cw_c, steps=b.cw_rounds * b.cw_steps, lr=b.cw_lr),
    }
    _attach(cases, "torchattacks " + torchattacks.__version__, table, lambda a: lambda: a(x, y))


def add_art(
    cases: dict[str, Case], entry: ZooEntry, x: torch.Tensor, y: torch.Tensor, budget: Any
) -> None:
    """ART: FGSM, PGD (both norms), APGD-CE/DLR, MI-FGSM, DeepFool and C&W."""
    try:
        import art
        from art.attacks.evasion import (
            AutoProjectedGradientDescent,
            CarliniL2Method,
            DeepFool,
            FastGradientMethod,
            MomentumIterativeMethod,
            ProjectedGradientDescentPyTorch,
        )
    except ImportError:
        print("adversarial-robustness-toolbox not installed; skipped", file=sys.stderr)
        return
    b, clf, (linf, l2) = budget, _art_classifier(entry), epsilons(entry)
    steps = b.pgd_steps
    common = {"batch_size": len(x), "verbose": False}

    def pgd(norm: Any, eps: float) -> Any:
        # A random start, as in bastion, torchattacks and Foolbox (ART's default starts at the
        # clean input: bench.seeds compares both starts).
        return ProjectedGradientDescentPyTorch(
            clf,
            norm=norm,
            eps=eps,
            eps_step=2.5 * eps / steps,
            max_iter=steps,
            num_random_init=1,
            **common,
        )

    def apgd(loss: str) -> Any:
        return AutoProjectedGradientDescent(
            clf,
            eps=linf,
            eps_step=2 * linf,
            max_iter=b.apgd_steps,
            nb_random_init=1,
            loss_type=loss,
            **common,
        )

    table = {
        "fgsm": FastGradientMethod(clf, norm=np.inf, eps=linf, batch_size=len(x)),
        "pgd-linf": pgd(np.inf, linf),
        "pgd-l2": pgd(2, l2),
        "apgd-ce": apgd("cross_entropy"),
        "apgd-dlr": apgd("difference_logits_ratio"),
        "mi-fgsm": MomentumIterativeMethod(
            clf, eps=linf, eps_step=linf / b.mi_steps, max_iter=b.mi_steps, **common
        ),
        "deepfool": DeepFool(clf, max_iter=b.deepfool_steps, epsilon=0.02, **common),
        "cw": CarliniL2Method(
            clf,
            binary_search_steps=b.cw_rounds,
            max_iter=b.cw_steps,
            learning_rate=b.cw_lr,
            initial_const=b.cw_c,
            **common,
        ),
    }
    xn, yn = x.numpy(), y.numpy()
    _attach(
        cases,
        "ART " + art.__version__,
        table,
        lambda a: lambda: torch.from_numpy(a.generate(xn, yn)),
    )


def _art_classifier(entry: ZooEntry) -> Any:
    from art.estimators.classification import PyTorchClassifier

    shape = (-1, 1, 1)
    return PyTorchClassifier(
        model=entry.model,
        loss=torch.nn.CrossEntropyLoss(),
        input_shape=entry.input_shape,
        nb_classes=entry.num_classes,
        clip_values=(0.0, 1.0),
        preprocessing=(
            np.asarray(entry.mean, dtype=np.float32).reshape(shape),
            np.asarray(entry.std, dtype=np.float32).reshape(shape),
        ),
        device_type="cpu",
    )


def add_foolbox(
    cases: dict[str, Case], entry: ZooEntry, x: torch.Tensor, y: torch.Tensor, budget: Any
) -> None:
    """Foolbox: FGSM, PGD (both norms), MI-FGSM, DeepFool and C&W (no APGD, no FAB)."""
    try:
        foolbox: Any = importlib.import_module("foolbox")  # untyped: keep mypy out of it
    except ImportError:
        print("foolbox not installed; skipped", file=sys.stderr)
        return
    fa = foolbox.attacks
    b, model, (linf, l2) = budget, _foolbox_model(entry), epsilons(entry)
    steps = b.pgd_steps
    table = {
        "fgsm": (fa.FGSM(random_start=False), linf),
        "pgd-linf": (fa.LinfPGD(abs_stepsize=2.5 * linf / steps, steps=steps), linf),
        "pgd-l2": (fa.L2PGD(abs_stepsize=2.5 * l2 / steps, steps=steps), l2),
        "mi-fgsm": (
            fa.LinfMomentumIterativeFastGradientMethod(
                abs_stepsize=linf / b.mi_steps, steps=b.mi_steps, momentum=1.0
            ),
            linf,
        ),
        # minimal-perturbation attacks: epsilons=None returns the unbounded adversarial,
        # which the table's projection then cuts to the budget
        "deepfool": (fa.L2DeepFoolAttack(steps=b.deepfool_steps, overshoot=0.02), None),
        "cw": (
            fa.L2CarliniWagnerAttack(
                binary_search_steps=b.cw_rounds,
                steps=b.cw_steps,
                stepsize=b.cw_lr,
                initial_const=b.cw_c,
            ),
            None,
        ),
    }

    def run(pair: tuple[Any, float | None]) -> Run:
        attack, eps = pair
        return lambda: attack(model, x, y, epsilons=eps)[1]

    _attach(cases, "Foolbox " + foolbox.__version__, table, run)


def _foolbox_model(entry: ZooEntry) -> Any:
    foolbox: Any = importlib.import_module("foolbox")
    return foolbox.PyTorchModel(_wrapped(entry), bounds=(0.0, 1.0), device="cpu")


def _attach(
    cases: dict[str, Case], tag: str, table: dict[str, Any], make: Callable[[Any], Run]
) -> None:
    for key, attack in table.items():
        if key in cases:  # --attacks may have left it out
            cases[key].runs[tag] = make(attack)


PEERS = (add_torchattacks, add_art, add_foolbox)
"""Adds each peer's runs, in the order of the table."""


def pgd_runs(
    entry: ZooEntry, x: torch.Tensor, y: torch.Tensor, *, eps: float, alpha: float, steps: int
) -> dict[str, Run]:
    """Linf PGD with a random start in each installed peer, for the per-iteration table."""
    runs: dict[str, Run] = {}
    try:
        import torchattacks

        ta = torchattacks.PGD(_wrapped(entry), eps=eps, alpha=alpha, steps=steps)
        runs["torchattacks " + torchattacks.__version__] = lambda: ta(x, y)
    except ImportError:
        pass
    try:
        import art
        from art.attacks.evasion import ProjectedGradientDescentPyTorch

        pgd = ProjectedGradientDescentPyTorch(
            _art_classifier(entry),
            norm=np.inf,
            eps=eps,
            eps_step=alpha,
            max_iter=steps,
            num_random_init=1,
            batch_size=len(x),
            verbose=False,
        )
        xn, yn = x.numpy(), y.numpy()
        runs["ART " + art.__version__] = lambda: torch.from_numpy(pgd.generate(xn, yn))
    except ImportError:
        pass
    try:
        foolbox: Any = importlib.import_module("foolbox")
        fb_pgd = foolbox.attacks.LinfPGD(abs_stepsize=alpha, steps=steps)
        model = _foolbox_model(entry)
        runs["Foolbox " + foolbox.__version__] = lambda: fb_pgd(model, x, y, epsilons=eps)[1]
    except ImportError:
        pass
    return runs
