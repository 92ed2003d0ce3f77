"""Side-by-side benchmarks: bastion against a bare torch loop and the peer libraries.

Run with ``make bench``. Writes ``bench/results/pgd.json`` and prints a Markdown table.
Every figure is a median over repeats, in one process, on the same model and batch.
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path

import torch
import torch.nn.functional as F

from bastion.attacks import PGD
from bastion.data import load_zoo_model
from bastion.models import TorchModel
from bench.evasion import _interleaved

RESULTS = Path(__file__).with_name("results")
STEPS = 50
EPSILON = 0.1
REPEATS = 15


def bench_pgd(batch: int) -> dict[str, object]:
    """Per-iteration cost of linf PGD on the digits CNN, bastion vs a bare loop vs peers."""
    entry = load_zoo_model("digits-cnn")
    module = entry.model.eval()
    x = torch.from_numpy(entry.test.x).repeat(4, 1, 1, 1)[:batch]
    y = torch.from_numpy(entry.test.y).repeat(4)[:batch]
    mean = torch.tensor(entry.mean, dtype=torch.float32).view(-1, 1, 1)
    std = torch.tensor(entry.std, dtype=torch.float32).view(-1, 1, 1)
    alpha = 2.5 * EPSILON / STEPS

    def bare() -> torch.Tensor:
        gen = torch.Generator().manual_seed(0)
        adv = (x + (torch.rand(x.shape, generator=gen) * 2 - 1) * EPSILON).clamp(0, 1)
        for _ in range(STEPS):
            adv = adv.detach().requires_grad_(True)
            loss = F.cross_entropy(module((adv - mean) / std), y, reduction="sum")
            (grad,) = torch.autograd.grad(loss, adv)
            adv = adv + alpha * grad.sign()
            adv = (x + (adv - x).clamp(-EPSILON, EPSILON)).clamp(0, 1)
        return adv

    model = TorchModel(
        module, input_shape=entry.input_shape, mean=entry.mean, std=entry.std, batch_size=batch
    )
    attack = PGD(epsilon=EPSILON, steps=STEPS, batch_size=batch)
    runs: dict[str, Callable[[], object]] = {
        "bare torch loop": bare,
        "bastion": lambda: attack.generate(model, x, y),
        "bastion (call)": lambda: attack(model, x, y),
    }
    try:
        import torchattacks

        ta = torchattacks.PGD(module, eps=EPSILON, alpha=alpha, steps=STEPS, random_start=True)
        ta.set_normalization_used(mean=entry.mean, std=entry.std)
        runs["torchattacks " + torchattacks.__version__] = lambda: ta(x, y)
    except ImportError:
        print("torchattacks not installed; skipped", file=sys.stderr)
    try:
        import art
        from art.attacks.evasion import ProjectedGradientDescentPyTorch
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
        art_pgd = ProjectedGradientDescentPyTorch(
            clf,
            norm="inf",
            eps=EPSILON,
            eps_step=alpha,
            max_iter=STEPS,
            batch_size=batch,
            num_random_init=1,
            verbose=False,
        )
        xn, yn = x.numpy(), y.numpy()
        runs["ART " + art.__version__] = lambda: art_pgd.generate(xn, yn)
    except ImportError:
        print("adversarial-robustness-toolbox not installed; skipped", file=sys.stderr)
    # Interleaved rounds (bench.evasion): a burst of load hits every implementation alike.
    timed = _interleaved(runs, REPEATS + 1, slow=math.inf)  # type: ignore[arg-type]
    rows = {name: seconds / STEPS for name, (seconds, _) in timed.items()}
    base = rows["bare torch loop"]
    return {
        "benchmark": "pgd-linf per iteration",
        "model": "zoo:digits-cnn",
        "batch": batch,
        "steps": STEPS,
        "seconds_per_iteration": rows,
        "ratio_to_bare_loop": {k: v / base for k, v in rows.items()},
    }


def main() -> None:
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    meta = {
        "date": date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads",
        "python": platform.python_version(),
    }
    results = [bench_pgd(batch) for batch in (64, 512)]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "pgd.json").write_text(
        json.dumps({"meta": meta, "results": results}, indent=2) + "\n"
    )
    print(f"\n{meta['date']} · {meta['machine']}\n")
    print("| batch | implementation | ms / iteration | ratio to bare loop |")
    print("|---|---|---|---|")
    for res in results:
        for name, secs in res["seconds_per_iteration"].items():  # type: ignore[attr-defined]
            ratio = res["ratio_to_bare_loop"][name]  # type: ignore[index]
            print(f"| {res['batch']} | {name} | {secs * 1e3:.2f} | {ratio:.2f}x |")


if __name__ == "__main__":
    main()
