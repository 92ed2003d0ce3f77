"""White-box evasion attacks side by side: bastion against torchattacks and ART.

Run with ``python -m bench.evasion``. Same model (the embedded digits CNN), same digits, same
budget for every library; each row reports the median wall time over repeats and the robust
accuracy of what the library returned, measured one way for all: every adversarial is
projected onto the epsilon-ball and the input bounds first (as bastion's base class does), so
a minimal-perturbation attack that overshoots the budget gets no credit. Writes
``bench/results/evasion.json`` and prints a Markdown table.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bastion.attacks import (
    L2CarliniWagnerAttack,
    L2DeepFoolAttack,
    LinfAPGDCEAttack,
    LinfAPGDDLRAttack,
    LinfAPGDTargetedAttack,
    LinfFABTargetedAttack,
    LinfMomentumIterativeAttack,
)
from bastion.attacks.norms import project
from bastion.core.threat_model import Norm
from bastion.data import load_zoo_model
from bastion.models import TorchModel

RESULTS = Path(__file__).with_name("results")
SAMPLES = int(os.environ.get("BENCH_SAMPLES", "300"))
REPEATS = int(os.environ.get("BENCH_REPEATS", "3"))
LINF, L2 = 0.15, 1.0
# C&W budget for every library: 4 binary-search rounds of 50 steps.
CW: dict[str, Any] = {"rounds": 4, "steps": 50, "lr": 0.5, "c": 1.0}

# A run slower than this many seconds is timed once, without a warm-up run.
SLOW = 10.0

Run = Callable[[], torch.Tensor]


def _median_seconds(fn: Run) -> tuple[float, torch.Tensor]:
    start = time.perf_counter()
    out = fn()
    first = time.perf_counter() - start
    if first > SLOW:  # warm-up hardly matters at this scale: one run is the figure
        return first, out
    times = []
    for _ in range(REPEATS - 1):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    if not times:  # one repeat: time the only run
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def main() -> None:
    """Run every attack in every library that implements it; print and save the table."""
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    entry = load_zoo_model("digits-cnn")
    module = entry.model.eval()
    x = torch.from_numpy(entry.test.x[:SAMPLES])
    y = torch.from_numpy(entry.test.y[:SAMPLES])
    model = TorchModel(
        module,
        input_shape=entry.input_shape,
        mean=entry.mean,
        std=entry.std,
        batch_size=SAMPLES,
    )

    def robust(adv: torch.Tensor, norm: Norm, eps: float) -> float:
        adv = (x + project(adv.detach().cpu().float() - x, norm, eps)).clamp(0, 1)
        with model.counter.paused():
            return float((model.labels(adv) == y).float().mean())

    def bastion(attack: Any) -> Run:
        return lambda: attack(model, x, y).x_adv

    cases: dict[str, tuple[Norm, float, dict[str, Run]]] = {
        "APGD-CE linf 0.15, 100 steps": (
            Norm.LINF,
            LINF,
            {"bastion": bastion(LinfAPGDCEAttack(epsilon=LINF, batch_size=SAMPLES))},
        ),
        "APGD-DLR linf 0.15, 100 steps": (
            Norm.LINF,
            LINF,
            {"bastion": bastion(LinfAPGDDLRAttack(epsilon=LINF, batch_size=SAMPLES))},
        ),
        "APGD-T linf 0.15, 9 targets x 100 steps": (
            Norm.LINF,
            LINF,
            {"bastion": bastion(LinfAPGDTargetedAttack(epsilon=LINF, batch_size=SAMPLES))},
        ),
        "FAB-T linf 0.15, 9 targets x 100 steps": (
            Norm.LINF,
            LINF,
            {"bastion": bastion(LinfFABTargetedAttack(epsilon=LINF, batch_size=SAMPLES))},
        ),
        "MI-FGSM linf 0.15, 10 steps": (
            Norm.LINF,
            LINF,
            {"bastion": bastion(LinfMomentumIterativeAttack(epsilon=LINF, batch_size=SAMPLES))},
        ),
        "DeepFool l2 (eps 1.0), 50 steps": (
            Norm.L2,
            L2,
            {"bastion": bastion(L2DeepFoolAttack(epsilon=L2, batch_size=SAMPLES))},
        ),
        "C&W L2 (eps 1.0), 4 x 50 steps": (
            Norm.L2,
            L2,
            {
                "bastion": bastion(
                    L2CarliniWagnerAttack(
                        epsilon=L2,
                        binary_search_steps=CW["rounds"],
                        steps=CW["steps"],
                        lr=CW["lr"],
                        initial_const=CW["c"],
                        batch_size=SAMPLES,
                    )
                )
            },
        ),
    }
    _add_torchattacks(cases, module, entry.mean, entry.std, x, y)
    _add_art(cases, module, entry, x, y)

    rows: list[dict[str, Any]] = []
    for name, (norm, eps, runs) in cases.items():
        for library, fn in runs.items():
            seconds, adv = _median_seconds(fn)
            rows.append(
                {
                    "attack": name,
                    "library": library,
                    "seconds": seconds,
                    "robust_accuracy": robust(adv, norm, eps),
                }
            )
            print(f"{name} · {library}: {seconds:.2f}s", file=sys.stderr, flush=True)
    fastest: dict[str, float] = {}
    for row in rows:
        if row["library"] == "bastion":
            fastest[row["attack"]] = row["seconds"]
    meta = {
        "date": date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads",
        "model": "zoo:digits-cnn",
        "samples": SAMPLES,
        "repeats": REPEATS,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "evasion.json").write_text(
        json.dumps({"meta": meta, "results": rows}, indent=2) + "\n"
    )
    print(f"\n{meta['date']} · {meta['machine']} · {SAMPLES} digits\n")
    print("| attack | library | seconds | time ratio to bastion | robust accuracy |")
    print("|---|---|---|---|---|")
    for row in rows:
        ratio = row["seconds"] / fastest[row["attack"]]
        print(
            f"| {row['attack']} | {row['library']} | {row['seconds']:.2f} | {ratio:.2f}x "
            f"| {100 * row['robust_accuracy']:.1f} % |"
        )


def _add_torchattacks(
    cases: dict[str, Any], module: Any, mean: Any, std: Any, x: torch.Tensor, y: torch.Tensor
) -> None:
    try:
        import torchattacks
    except ImportError:
        print("torchattacks not installed; skipped", file=sys.stderr)
        return
    tag = "torchattacks " + torchattacks.__version__
    # The normalisation goes inside the network: with torchattacks' own
    # ``set_normalization_used``, its APGD measures epsilon in normalised units and returns
    # perturbations up to epsilon / std (0.40 for 0.15 here), which the projection would undo.
    shift = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
    scale = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)
    module = torch.nn.Sequential(_Normalize(shift, scale), module).eval()

    def wrap(attack: Any) -> Run:
        return lambda: attack(x, y)

    table = {
        "APGD-CE linf 0.15, 100 steps": torchattacks.APGD(module, eps=LINF, steps=100, loss="ce"),
        "APGD-DLR linf 0.15, 100 steps": torchattacks.APGD(module, eps=LINF, steps=100, loss="dlr"),
        "APGD-T linf 0.15, 9 targets x 100 steps": torchattacks.APGDT(
            module, eps=LINF, steps=100, n_classes=10
        ),
        "FAB-T linf 0.15, 9 targets x 100 steps": torchattacks.FAB(
            module, eps=LINF, steps=100, multi_targeted=True, n_classes=10
        ),
        "MI-FGSM linf 0.15, 10 steps": torchattacks.MIFGSM(
            module, eps=LINF, alpha=LINF / 10, steps=10
        ),
        "DeepFool l2 (eps 1.0), 50 steps": torchattacks.DeepFool(module, steps=50),
        # torchattacks' C&W has no binary search: one run of all the steps at c = 1, which
        # also stops once the total loss rises between two checks a tenth of the steps apart.
        "C&W L2 (eps 1.0), 4 x 50 steps": torchattacks.CW(
            module, c=CW["c"], steps=CW["rounds"] * CW["steps"], lr=CW["lr"]
        ),
    }
    for name, attack in table.items():
        cases[name][2][tag] = wrap(attack)


class _Normalize(torch.nn.Module):
    def __init__(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        self.mean, self.std = mean, std

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return (z - self.mean) / self.std


def _add_art(
    cases: dict[str, Any], module: Any, entry: Any, x: torch.Tensor, y: torch.Tensor
) -> None:
    try:
        import art
        from art.attacks.evasion import (
            AutoProjectedGradientDescent,
            CarliniL2Method,
            DeepFool,
            MomentumIterativeMethod,
        )
        from art.estimators.classification import PyTorchClassifier
    except ImportError:
        print("adversarial-robustness-toolbox not installed; skipped", file=sys.stderr)
        return
    tag = "ART " + art.__version__
    shape = (-1, 1, 1)
    clf = PyTorchClassifier(
        model=module,
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
    xn, yn = x.numpy(), y.numpy()
    n = len(xn)

    def wrap(attack: Any) -> Run:
        return lambda: torch.from_numpy(attack.generate(xn, yn))

    common = {"batch_size": n, "verbose": False}
    table = {
        "APGD-CE linf 0.15, 100 steps": AutoProjectedGradientDescent(
            clf,
            eps=LINF,
            eps_step=2 * LINF,
            max_iter=100,
            nb_random_init=1,
            loss_type="cross_entropy",
            **common,
        ),
        "APGD-DLR linf 0.15, 100 steps": AutoProjectedGradientDescent(
            clf,
            eps=LINF,
            eps_step=2 * LINF,
            max_iter=100,
            nb_random_init=1,
            loss_type="difference_logits_ratio",
            **common,
        ),
        "MI-FGSM linf 0.15, 10 steps": MomentumIterativeMethod(
            clf, eps=LINF, eps_step=LINF / 10, max_iter=10, **common
        ),
        "DeepFool l2 (eps 1.0), 50 steps": DeepFool(clf, max_iter=50, epsilon=0.02, **common),
        "C&W L2 (eps 1.0), 4 x 50 steps": CarliniL2Method(
            clf,
            binary_search_steps=CW["rounds"],
            max_iter=CW["steps"],
            learning_rate=CW["lr"],
            initial_const=CW["c"],
            **common,
        ),
    }
    for name, attack in table.items():
        cases[name][2][tag] = wrap(attack)


if __name__ == "__main__":
    main()
