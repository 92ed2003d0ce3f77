"""Attack strength over many random starts: APGD-CE and APGD-DLR (8x8), linf PGD and APGD-DLR
(32x32) in bastion, torchattacks, ART and Foolbox.

Run with ``python -m bench.seeds [SEEDS] [PARTS]`` (default 16 seeds, 8 for APGD-DLR at
32x32; PARTS a comma-separated subset of ``apgd,pgd32,dlr32``, whose rows replace theirs in
the results file). One run of a random-start attack
varies by about a point of robust accuracy on 300 digits, so a single-seed comparison
cannot tell libraries apart at the 0.5-point level; this compares means over seeds.
PGD starts at a random point of the ball in every library (Madry et al.; ART's
``num_random_init=1``); the rows "from the clean input" run it without a random start
(bastion's ``random_start=False``, ART's default ``num_random_init=0``), once, as they are
deterministic. Writes ``bench/results/seeds.json`` and prints a Markdown table.
"""

from __future__ import annotations

import importlib
import json
import os
import statistics
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bastion.attacks import (
    LinfAPGDCEAttack,
    LinfAPGDDLRAttack,
    LinfProjectedGradientDescentAttack,
)
from bastion.data import load_zoo_model
from bastion.models import TorchModel
from bench.evasion import _Normalize
from bench.evasion_peers import _art_classifier, _foolbox_model, _wrapped

RESULTS = Path(__file__).with_name("results")
EPSILON = 0.15
SAMPLES = 300
PARTS = ("apgd", "pgd32", "dlr32")
DLR32_SAMPLES = 200
DLR32_SEEDS = 8
PGD32_EPSILON = 0.1  # bench.evasion_peers.EPSILONS for the 32x32 CNN
PGD32_STEPS = 20


def main() -> None:
    seeds = range(int(sys.argv[1]) if len(sys.argv) > 1 else 16)
    parts = set(sys.argv[2].split(",")) if len(sys.argv) > 2 else set(PARTS)
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    rows = _apgd_rows(seeds) if "apgd" in parts else []
    if "pgd32" in parts:
        rows += _pgd_rows(seeds)
    if "dlr32" in parts:
        rows += _dlr32_rows(range(min(len(seeds), DLR32_SEEDS)))
    out = RESULTS / "seeds.json"
    if parts != set(PARTS) and out.exists():  # keep the rows of the parts not rerun
        fresh = {(r["model"], r["attack"]) for r in rows}
        old = json.loads(out.read_text())["results"]
        rows = [r for r in old if (r["model"], r["attack"]) not in fresh] + rows
    meta = {
        "date": date.today().isoformat(),
        "samples": SAMPLES,
        "dlr32_samples": DLR32_SAMPLES,
        "models": ["zoo:digits-cnn", "zoo:digits32-cnn"],
    }
    RESULTS.mkdir(exist_ok=True)
    out.write_text(json.dumps({"meta": meta, "results": rows}, indent=2) + "\n")
    print(f"\n{meta['date']} · {SAMPLES} digits ({DLR32_SAMPLES} for APGD-DLR at 32x32)\n")
    print("| model | attack | library | seeds | mean robust accuracy | sd | min-max |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['model']} | {r['attack']} | {r['library']} | {r['seeds']} | {r['mean']:.2f} % "
            f"| {r['sd']:.2f} | {r['min']:.1f}-{r['max']:.1f} |"
        )


def _robust_accuracy(
    model: TorchModel, x: torch.Tensor, y: torch.Tensor, eps: float
) -> Callable[[torch.Tensor], float]:
    """Robust accuracy in percent of what a library returned, projected onto the linf ball
    of ``eps`` around ``x`` and the input bounds first (the same for every library)."""

    def robust(adv: torch.Tensor) -> float:
        adv = torch.max(torch.min(adv.detach().float(), x + eps), x - eps).clamp(0, 1)
        with model.counter.paused():
            return 100 * float((model.labels(adv) == y).float().mean())

    return robust


def _row(model: str, attack: str, library: str, values: list[float]) -> dict[str, Any]:
    """One table row: the robust accuracies of one library over the seeds, summarised."""
    return {
        "model": model,
        "attack": attack,
        "library": library,
        "seeds": len(values),
        "mean": statistics.mean(values),
        "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
        "min": min(values),
        "max": max(values),
    }


def _apgd_rows(seeds: range) -> list[dict[str, Any]]:
    """APGD-CE and APGD-DLR on the 8x8 CNN, 300 digits, in every library, per seed."""
    entry = load_zoo_model("digits-cnn")
    module = entry.model.eval()
    x = torch.from_numpy(entry.test.x[:SAMPLES])
    y = torch.from_numpy(entry.test.y[:SAMPLES])
    model = TorchModel(
        module, input_shape=entry.input_shape, mean=entry.mean, std=entry.std, batch_size=SAMPLES
    )
    mean = torch.tensor(entry.mean, dtype=torch.float32).view(-1, 1, 1)
    std = torch.tensor(entry.std, dtype=torch.float32).view(-1, 1, 1)
    wrapped = torch.nn.Sequential(_Normalize(mean, std), module).eval()

    robust = _robust_accuracy(model, x, y, EPSILON)

    runs: dict[str, dict[str, Callable[[int], torch.Tensor]]] = {
        "APGD-CE": {
            "bastion": lambda s: (
                LinfAPGDCEAttack(epsilon=EPSILON, batch_size=SAMPLES, seed=s)(model, x, y).x_adv
            )
        },
        "APGD-DLR": {
            "bastion": lambda s: (
                LinfAPGDDLRAttack(epsilon=EPSILON, batch_size=SAMPLES, seed=s)(model, x, y).x_adv
            )
        },
    }
    try:
        import torchattacks

        for name, loss in (("APGD-CE", "ce"), ("APGD-DLR", "dlr")):
            runs[name][f"torchattacks {torchattacks.__version__}"] = lambda s, loss=loss: (
                torchattacks.APGD(wrapped, eps=EPSILON, steps=100, loss=loss, seed=s)(x, y)
            )
    except ImportError:
        print("torchattacks not installed; skipped", file=sys.stderr)
    try:
        import art
        from art.attacks.evasion import AutoProjectedGradientDescent
        from art.estimators.classification import PyTorchClassifier

        clf = PyTorchClassifier(
            model=module,
            loss=torch.nn.CrossEntropyLoss(),
            input_shape=entry.input_shape,
            nb_classes=entry.num_classes,
            clip_values=(0.0, 1.0),
            preprocessing=(mean.numpy(), std.numpy()),
            device_type="cpu",
        )

        def art_run(seed: int, loss: str) -> torch.Tensor:
            np.random.seed(seed)
            torch.manual_seed(seed)
            attack = AutoProjectedGradientDescent(
                clf,
                eps=EPSILON,
                eps_step=2 * EPSILON,
                max_iter=100,
                nb_random_init=1,
                loss_type=loss,
                batch_size=SAMPLES,
                verbose=False,
            )
            return torch.from_numpy(attack.generate(x.numpy(), y.numpy()))

        for name, loss in (("APGD-CE", "cross_entropy"), ("APGD-DLR", "difference_logits_ratio")):
            runs[name][f"ART {art.__version__}"] = lambda s, loss=loss: art_run(s, loss)
    except ImportError:
        print("adversarial-robustness-toolbox not installed; skipped", file=sys.stderr)

    rows = []
    for name, libraries in runs.items():
        for library, fn in libraries.items():
            values = [robust(fn(s)) for s in seeds]
            rows.append(_row("digits-cnn", f"{name} linf {EPSILON}, 100 steps", library, values))
            print(f"{name} · {library}: done", file=sys.stderr, flush=True)
    return rows


def _dlr32_rows(seeds: range) -> list[dict[str, Any]]:
    """APGD-DLR on the 32x32 CNN (linf 0.1, 100 steps, 200 digits) in every library, per
    seed: the case where one run on 100 digits put bastion 2 points above ART."""
    entry = load_zoo_model("digits32-cnn")
    eps, n = PGD32_EPSILON, DLR32_SAMPLES
    x = torch.from_numpy(entry.test.x[:n])
    y = torch.from_numpy(entry.test.y[:n])
    model = TorchModel(entry.model.eval(), **{**entry.adapter_options(), "batch_size": n})
    wrapped = _wrapped(entry)

    robust = _robust_accuracy(model, x, y, eps)

    runs: dict[str, Callable[[int], torch.Tensor]] = {
        "bastion": lambda s: LinfAPGDDLRAttack(epsilon=eps, batch_size=n, seed=s).generate(
            model, x, y
        )
    }
    try:
        import torchattacks

        def ta_run(seed: int) -> torch.Tensor:
            out: torch.Tensor = torchattacks.APGD(
                wrapped, eps=eps, steps=100, loss="dlr", seed=seed
            )(x, y)
            return out

        runs[f"torchattacks {torchattacks.__version__}"] = ta_run
    except ImportError:
        print("torchattacks not installed; skipped", file=sys.stderr)
    try:
        import art
        from art.attacks.evasion import AutoProjectedGradientDescent

        clf = _art_classifier(entry)

        def art_run(seed: int) -> torch.Tensor:
            np.random.seed(seed)
            torch.manual_seed(seed)
            attack = AutoProjectedGradientDescent(
                clf,
                eps=eps,
                eps_step=2 * eps,
                max_iter=100,
                nb_random_init=1,
                loss_type="difference_logits_ratio",
                batch_size=n,
                verbose=False,
            )
            return torch.from_numpy(attack.generate(x.numpy(), y.numpy()))

        runs[f"ART {art.__version__}"] = art_run
    except ImportError:
        print("adversarial-robustness-toolbox not installed; skipped", file=sys.stderr)
    rows: list[dict[str, Any]] = []
    for library, fn in runs.items():
        values = [robust(fn(s)) for s in seeds]
        rows.append(_row("digits32-cnn", f"APGD-DLR linf {eps}, 100 steps", library, values))
        print(f"APGD-DLR 32x32 · {library}: done", file=sys.stderr, flush=True)
    return rows


def _pgd_rows(seeds: range) -> list[dict[str, Any]]:
    """Linf PGD, 20 steps, on the 32x32 CNN: every library from a random start, per seed; and
    bastion and ART from the clean input, once."""
    entry = load_zoo_model("digits32-cnn")
    eps, steps = PGD32_EPSILON, PGD32_STEPS
    alpha = 2.5 * eps / steps
    x = torch.from_numpy(entry.test.x[:SAMPLES])
    y = torch.from_numpy(entry.test.y[:SAMPLES])
    model = TorchModel(entry.model.eval(), **{**entry.adapter_options(), "batch_size": SAMPLES})
    wrapped = _wrapped(entry)

    robust = _robust_accuracy(model, x, y, eps)

    def ours(seed: int, start: bool = True) -> torch.Tensor:
        attack = LinfProjectedGradientDescentAttack(
            epsilon=eps,
            steps=steps,
            stepsize=alpha,
            random_start=start,
            batch_size=SAMPLES,
            seed=seed,
        )
        return attack.generate(model, x, y)

    random_start: dict[str, Callable[[int], torch.Tensor]] = {"bastion": ours}
    clean_start: dict[str, Callable[[int], torch.Tensor]] = {
        "bastion": lambda s: ours(s, start=False)
    }
    try:
        import torchattacks

        def ta_run(seed: int) -> torch.Tensor:
            torch.manual_seed(seed)
            out: torch.Tensor = torchattacks.PGD(
                wrapped, eps=eps, alpha=alpha, steps=steps, random_start=True
            )(x, y)
            return out

        random_start[f"torchattacks {torchattacks.__version__}"] = ta_run
    except ImportError:
        print("torchattacks not installed; skipped", file=sys.stderr)
    try:
        import art
        from art.attacks.evasion import ProjectedGradientDescentPyTorch

        clf = _art_classifier(entry)

        def art_run(seed: int, inits: int = 1) -> torch.Tensor:
            np.random.seed(seed)
            torch.manual_seed(seed)
            pgd = ProjectedGradientDescentPyTorch(
                clf,
                norm=np.inf,
                eps=eps,
                eps_step=alpha,
                max_iter=steps,
                num_random_init=inits,
                batch_size=SAMPLES,
                verbose=False,
            )
            return torch.from_numpy(pgd.generate(x.numpy(), y.numpy()))

        random_start[f"ART {art.__version__}"] = art_run
        clean_start[f"ART {art.__version__}"] = lambda s: art_run(s, inits=0)
    except ImportError:
        print("adversarial-robustness-toolbox not installed; skipped", file=sys.stderr)
    try:
        foolbox: Any = importlib.import_module("foolbox")

        fmodel = _foolbox_model(entry)

        def fb_run(seed: int) -> torch.Tensor:
            torch.manual_seed(seed)
            attack = foolbox.attacks.LinfPGD(abs_stepsize=alpha, steps=steps)
            _, clipped, _ = attack(fmodel, x, y, epsilons=eps)
            out: torch.Tensor = clipped
            return out

        random_start[f"Foolbox {foolbox.__version__}"] = fb_run
    except ImportError:
        print("foolbox not installed; skipped", file=sys.stderr)

    rows: list[dict[str, Any]] = []
    label = f"PGD linf {eps}, {steps} steps"
    for start, libraries, runs in (
        ("random start", random_start, seeds),
        ("from the clean input", clean_start, range(1)),
    ):
        for library, fn in libraries.items():
            values = [robust(fn(s)) for s in runs]
            rows.append(_row("digits32-cnn", f"{label}, {start}", library, values))
            print(f"PGD 32x32 {start} · {library}: done", file=sys.stderr, flush=True)
    return rows


if __name__ == "__main__":
    main()
