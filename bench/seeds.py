"""Attack strength over many random starts: APGD-CE and APGD-DLR in bastion, torchattacks, ART.

Run with ``python -m bench.seeds [SEEDS]`` (default 16). One run of a random-start attack
varies by about a point of robust accuracy on 300 digits, so a single-seed comparison
cannot tell libraries apart at the 0.5-point level; this compares means over seeds.
Writes ``bench/results/seeds.json`` and prints a Markdown table.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path

import numpy as np
import torch

from bastion.attacks import LinfAPGDCEAttack, LinfAPGDDLRAttack
from bastion.data import load_zoo_model
from bastion.models import TorchModel
from bench.evasion import _Normalize

RESULTS = Path(__file__).with_name("results")
EPSILON = 0.15
SAMPLES = 300


def main() -> None:
    seeds = range(int(sys.argv[1]) if len(sys.argv) > 1 else 16)
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
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

    def robust(adv: torch.Tensor) -> float:
        adv = torch.max(torch.min(adv.detach().float(), x + EPSILON), x - EPSILON).clamp(0, 1)
        with model.counter.paused():
            return 100 * float((model.labels(adv) == y).float().mean())

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
            rows.append(
                {
                    "attack": f"{name} linf {EPSILON}, 100 steps",
                    "library": library,
                    "seeds": len(values),
                    "mean": statistics.mean(values),
                    "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
                    "min": min(values),
                    "max": max(values),
                }
            )
            print(f"{name} · {library}: done", file=sys.stderr, flush=True)
    meta = {"date": date.today().isoformat(), "samples": SAMPLES, "model": "zoo:digits-cnn"}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "seeds.json").write_text(
        json.dumps({"meta": meta, "results": rows}, indent=2) + "\n"
    )
    print(f"\n{meta['date']} · {SAMPLES} digits · {len(seeds)} seeds\n")
    print("| attack | library | mean robust accuracy | sd | min-max |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['attack']} | {r['library']} | {r['mean']:.2f} % | {r['sd']:.2f} "
            f"| {r['min']:.1f}-{r['max']:.1f} |"
        )


if __name__ == "__main__":
    main()
