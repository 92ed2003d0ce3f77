"""The standard evaluation side by side: bastion against torchattacks' and ART's AutoAttack.

Run with ``python -m bench.autoattack`` (``--quick`` for a small smoke run that writes nothing).
The same models as ``bench/evasion.py`` (the embedded digits CNN at 8x8, ``zoo:digits-cnn``,
and the wider CNN on the digits upsampled to 32x32, ``zoo:digits32-cnn``), the same held-out
digits, linf epsilons 0.1 and 0.15 at 8x8, 0.05 and 0.1 at 32x32 (at 0.15 no 32x32 digit
stays robust). Each library runs once per model and epsilon:

- bastion: `bastion.assessment.standard.standard_evaluation` with its defaults, the protocol
  of Croce & Hein (ICML 2020): APGD-CE, APGD-T (9 targets), FAB-T (9 targets), Square (5000
  queries), 100 steps each, every member on the points still robust; and the same at
  torchattacks' shipped budget (10 steps for APGD-CE, APGD-T and FAB-T).
- torchattacks ``AutoAttack(version="standard")`` as shipped: the same four members, but
  torchattacks gives APGD, APGD-T and FAB 10 steps by default, not the paper's 100; and the
  same ensemble with the members set to the paper's 100 steps ("paper steps").
- ART ``AutoAttack``: ART has no FAB, and its ``targeted=True`` reruns every listed attack
  against every class, so APGD-T cannot be added alone. The closest set it allows is
  APGD-CE, APGD-DLR (untargeted) and Square, each with one restart and the paper's budgets
  ("standard set"); with ``--art-defaults``, its own default list (APGD-CE and APGD-DLR with
  5 restarts each, DeepFool, Square with 5 restarts) is a second ART row.

Robust accuracy is measured one way for all: each returned input is projected onto the
epsilon-ball and the input bounds, then classified. Compute is counted by a layer wrapped
around the network that every library calls: forward rows (one per image per forward pass)
and the rows of those passes that were differentiated (input requiring a gradient).
Writes ``bench/results/autoattack.json`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bastion.assessment.standard import standard_evaluation
from bastion.attacks.norms import project
from bastion.core.threat_model import Norm
from bastion.data import ZooEntry, load_zoo_model
from bastion.models import TorchModel
from bench.evasion_peers import _art_classifier, _wrapped

RESULTS = Path(__file__).with_name("results")
MODELS = ("digits-cnn", "digits32-cnn")
# linf budgets per model: at 0.15 the 32x32 model keeps no robust digit, so it gets 0.05
EPSILONS = {"digits-cnn": (0.1, 0.15), "digits32-cnn": (0.05, 0.1)}


@dataclass(frozen=True)
class Budget:
    """What every library gets: the paper's budgets, or small ones for ``--quick``."""

    samples: int = 200
    steps: int = 100
    targets: int = 9
    square_queries: int = 5000
    art_default_restarts: int = 5
    # ART's own default list is slow (more than 8 minutes for 200 8x8 digits at linf 0.1,
    # most of it in Square with 5 restarts): run only with --art-defaults
    art_defaults: bool = False


FULL = Budget()
QUICK = Budget(samples=48, steps=20, targets=3, square_queries=300, art_default_restarts=2)


class CountingModule(torch.nn.Module):
    """Wraps a network and counts the rows it sees: all forward rows, and differentiated ones."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.forward_rows = 0
        self.gradient_rows = 0

    def reset(self) -> None:
        """Zero both counts."""
        self.forward_rows = self.gradient_rows = 0

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        rows = int(z.shape[0])
        self.forward_rows += rows
        if torch.is_grad_enabled() and z.requires_grad:
            self.gradient_rows += rows
        out: torch.Tensor = self.inner(z)
        return out


Run = Callable[[], torch.Tensor]


def _bastion(
    entry: ZooEntry, x: torch.Tensor, y: torch.Tensor, eps: float, b: Budget
) -> dict[str, Run]:
    model = TorchModel(entry.model, **{**entry.adapter_options(), "batch_size": len(x)})
    overrides: dict[str, dict[str, Any]] = {}
    if b != FULL:
        overrides = {
            "apgd-ce-linf": {"steps": b.steps},
            "apgd-t-linf": {"steps": b.steps, "target_classes": b.targets},
            "fab-t-linf": {"steps": b.steps, "target_classes": b.targets},
            "square-linf": {"max_queries": b.square_queries},
        }

    # The same ensemble at torchattacks' shipped budget: a tenth of the steps for the three
    # gradient members (10 instead of the paper's 100), Square unchanged.
    short = max(1, b.steps // 10)
    shipped = {
        **overrides,
        "apgd-ce-linf": {**overrides.get("apgd-ce-linf", {}), "steps": short},
        "apgd-t-linf": {**overrides.get("apgd-t-linf", {}), "steps": short},
        "fab-t-linf": {**overrides.get("fab-t-linf", {}), "steps": short},
    }

    def run(members: dict[str, dict[str, Any]]) -> torch.Tensor:
        result = standard_evaluation(model, x, y, epsilon=eps, batch_size=len(x), overrides=members)
        assert result.x_adv is not None
        return result.x_adv

    return {
        "bastion standard_evaluation": lambda: run(overrides),
        f"bastion standard_evaluation ({short} steps, torchattacks' shipped budget)": (
            lambda: run(shipped)
        ),
    }


def _torchattacks(
    entry: ZooEntry, x: torch.Tensor, y: torch.Tensor, eps: float, b: Budget
) -> dict[str, Run]:
    try:
        import torchattacks
    except ImportError:
        print("torchattacks not installed; skipped", file=sys.stderr)
        return {}
    tag = "torchattacks " + torchattacks.__version__
    module = _wrapped(entry)

    def build(steps: int | None) -> Any:
        aa = torchattacks.AutoAttack(module, norm="Linf", eps=eps, n_classes=10, seed=0)
        apgd, apgdt, fab, square = aa._autoattack.attacks
        apgdt.n_target_classes = fab.n_target_classes = b.targets
        square.n_queries = b.square_queries
        if steps is not None:
            apgd.steps = apgdt.steps = fab.steps = steps
        return aa

    shipped, paper = build(None if b == FULL else max(1, b.steps // 10)), build(b.steps)
    return {
        f"{tag} AutoAttack (as shipped, 10 steps)": lambda: shipped(x, y),
        f"{tag} AutoAttack (paper steps)": lambda: paper(x, y),
    }


def _art(
    entry: ZooEntry, x: torch.Tensor, y: torch.Tensor, eps: float, b: Budget
) -> dict[str, Run]:
    try:
        import art
        from art.attacks.evasion import (
            AutoAttack,
            AutoProjectedGradientDescent,
            DeepFool,
            SquareAttack,
        )
    except ImportError:
        print("adversarial-robustness-toolbox not installed; skipped", file=sys.stderr)
        return {}
    tag = "ART " + art.__version__
    clf = _art_classifier(entry)
    n = len(x)

    def apgd(loss: str, restarts: int) -> Any:
        return AutoProjectedGradientDescent(
            clf,
            norm=np.inf,
            eps=eps,
            eps_step=2 * eps,
            max_iter=b.steps,
            nb_random_init=restarts,
            batch_size=n,
            loss_type=loss,
            verbose=False,
        )

    def square(restarts: int) -> Any:
        return SquareAttack(
            clf,
            norm=np.inf,
            eps=eps,
            max_iter=b.square_queries,
            p_init=0.8,
            nb_restarts=restarts,
            batch_size=n,
            verbose=False,
        )

    standard = AutoAttack(
        clf,
        norm=np.inf,
        eps=eps,
        eps_step=2 * eps,
        attacks=[apgd("cross_entropy", 1), apgd("difference_logits_ratio", 1), square(1)],
        batch_size=n,
    )
    xn, yn = x.numpy(), y.numpy()
    runs: dict[str, Run] = {
        f"{tag} AutoAttack (standard set)": lambda: torch.from_numpy(standard.generate(xn, yn))
    }
    if b.art_defaults:
        r = b.art_default_restarts
        default = AutoAttack(
            clf,
            norm=np.inf,
            eps=eps,
            eps_step=2 * eps,
            attacks=[
                apgd("cross_entropy", r),
                apgd("difference_logits_ratio", r),
                DeepFool(
                    clf, max_iter=b.steps, epsilon=1e-3, nb_grads=10, batch_size=n, verbose=False
                ),
                square(r),
            ],
            batch_size=n,
        )
        runs[f"{tag} AutoAttack (ART's defaults)"] = lambda: torch.from_numpy(
            default.generate(xn, yn)
        )
    return runs


def bench_model(entry: ZooEntry, budget: Budget, epsilons: tuple[float, ...]) -> list[Any]:
    """Every library's AutoAttack on one zoo model at each epsilon; one row per run."""
    n = budget.samples
    x = torch.from_numpy(entry.test.x[:n])
    y = torch.from_numpy(entry.test.y[:n])
    judge = TorchModel(entry.model, **{**entry.adapter_options(), "batch_size": n})
    counter = CountingModule(entry.model).eval()
    counted = replace(entry, model=counter)
    rows: list[dict[str, Any]] = []
    for eps in epsilons:
        runs: dict[str, Run] = {}
        for add in (_bastion, _torchattacks, _art):
            runs.update(add(counted, x, y, eps, budget))
        for library, fn in runs.items():
            counter.reset()
            torch.manual_seed(0)
            start = time.perf_counter()
            adv = fn().detach().cpu().float()
            seconds = time.perf_counter() - start
            adv = (x + project(adv - x, Norm.LINF, eps)).clamp(0, 1)
            robust = float((judge.labels(adv) == y).float().mean())
            row: dict[str, Any] = {
                "model": entry.name,
                "epsilon": eps,
                "library": library,
                "seconds": seconds,
                "forward_rows": counter.forward_rows,
                "gradient_rows": counter.gradient_rows,
                "clean_accuracy": float((judge.labels(x) == y).float().mean()),
                "robust_accuracy": robust,
            }
            rows.append(row)
            print(
                f"{entry.name} · linf {eps} · {library}: {seconds:.1f}s, "
                f"robust {100 * robust:.1f} %, {counter.forward_rows:,} forward rows "
                f"({counter.gradient_rows:,} differentiated)",
                file=sys.stderr,
            )
    return rows


def _print_table(meta: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    print(f"\n{meta['date']} · {meta['machine']} · {meta['budget']['samples']} digits")
    print(
        "\n| model | linf eps | library | robust accuracy | seconds | time ratio to bastion "
        "| forward rows | gradient rows |"
    )
    print("|---|---|---|---|---|---|---|---|")
    ours = {
        (r["model"], r["epsilon"]): r for r in rows if r["library"] == "bastion standard_evaluation"
    }
    for r in rows:
        base = ours[(r["model"], r["epsilon"])]
        print(
            f"| {r['model']} | {r['epsilon']:g} | {r['library']} "
            f"| {100 * r['robust_accuracy']:.1f} % | {r['seconds']:.1f} "
            f"| {r['seconds'] / base['seconds']:.2f}x | {r['forward_rows']:,} "
            f"| {r['gradient_rows']:,} |"
        )


def main(argv: list[str] | None = None) -> None:
    """Run the table for the chosen models; save it unless ``--quick`` (without ``--out``)."""
    parser = argparse.ArgumentParser(prog="python -m bench.autoattack", description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="small budgets; writes nothing unless --out"
    )
    parser.add_argument("--out", default=None, help="results file (default: bench/results/)")
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated zoo names")
    parser.add_argument(
        "--epsilons",
        default="",
        help="comma-separated linf budgets for every model (default: per model, see EPSILONS)",
    )
    parser.add_argument(
        "--art-defaults",
        action="store_true",
        help="also run ART's AutoAttack with its own default attack list (slow)",
    )
    args = parser.parse_args(argv)
    budget = QUICK if args.quick else FULL
    budget = replace(budget, art_defaults=args.art_defaults)
    if "BENCH_SAMPLES" in os.environ:
        budget = replace(budget, samples=int(os.environ["BENCH_SAMPLES"]))
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    chosen = tuple(float(e) for e in args.epsilons.split(",") if e)
    rows: list[dict[str, Any]] = []
    for name in args.models.split(","):
        rows += bench_model(load_zoo_model(name), budget, chosen or EPSILONS[name])
    meta = {
        "date": date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads",
        "models": [f"zoo:{m}" for m in args.models.split(",")],
        "budget": asdict(budget),
        "quick": args.quick,
    }
    out = Path(args.out) if args.out else None if args.quick else RESULTS / "autoattack.json"
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"meta": meta, "results": rows}, indent=2) + "\n")
    _print_table(meta, rows)


if __name__ == "__main__":
    main()
