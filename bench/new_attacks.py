"""The newer attacks side by side: bastion against the peers that implement them.

Run with ``python -m bench.new_attacks`` (``--quick`` for a small smoke run that writes
nothing). The same models and digits as ``bench/evasion.py`` (``zoo:digits-cnn`` at 8x8,
``zoo:digits32-cnn`` at 32x32), the same budget in every library:

- JSMA (``jsma-l0``): torchattacks ``JSMA`` and ART ``SaliencyMapMethod``, theta 1 (a chosen
  feature is set to the maximum), at most ``gamma`` = 14.5 % of the features. bastion's
  untargeted JSMA aims at the class the clean logits rank second; the peers are given that
  same class as their target (torchattacks would otherwise take ``(y + 1) % 10``, ART a
  random class).
- Sign-OPT (``sign-opt-l2``): ART ``SignOPTAttack``, untargeted, the paper's k, alpha, beta
  and the same query limit.
- FAB, untargeted (``fab-linf``, ``fab-l2``): torchattacks ``FAB(multi_targeted=False)``
  (ART and Foolbox have no FAB).
- PGD in l1 (``pgd-l1``, Sparse L1 Descent): Foolbox ``SparseL1DescentAttack`` (the same
  algorithm) and ART ``ProjectedGradientDescent(norm=1)`` (dense l1 steps); torchattacks has
  no l1 attack.
- EOT-PGD (``eot-pgd-linf``) on a randomised model (Gaussian noise of std 0.1 added to the
  input on every forward pass): torchattacks ``EOTPGD``, same steps and draws per step.

Each row reports the median wall time over interleaved repeats and its ratio to bastion's,
the attack success rate on the digits the model gets right, measured one way for all (each
output projected onto the budget and the input bounds first; for l0, a sample whose output
changes more features than the budget counts as a failure), and for minimum-norm attacks
the median perturbation over the digits the model gets right, a failure counting as infinite
(so giving up on the hardest digits does not shrink it). On the randomised model "success"
is the mean over 16 noise draws of a wrong label. Writes ``bench/results/new_attacks.json``
(``--seeds K``: ``new_attacks_seeds.json``, means over K seeds, nothing timed).
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import platform
import statistics
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bastion.attacks.base import Attack
from bastion.attacks.evasion.adaptive import LinfEOTProjectedGradientDescentAttack
from bastion.attacks.evasion.fab import L2FABAttack, LinfFABAttack
from bastion.attacks.evasion.jsma import L0JacobianSaliencyMapAttack
from bastion.attacks.evasion.pgd_l1 import L1ProjectedGradientDescentAttack
from bastion.attacks.evasion.signopt import L2SignOPTAttack
from bastion.attacks.norms import lp_norm, project
from bastion.core.threat_model import Norm
from bastion.data import ZooEntry, load_zoo_model
from bastion.models import TorchModel
from bench.autoattack import CountingModule
from bench.evasion import _interleaved
from bench.evasion_peers import _art_classifier, _wrapped, epsilons

RESULTS = Path(__file__).with_name("results")
MODELS = ("digits-cnn", "digits32-cnn")
CASES = ("jsma", "sign-opt", "fab-linf", "fab-l2", "pgd-l1", "eot-pgd")
# l1 budgets per model, chosen like bench.evasion_peers.EPSILONS: some digits stay robust.
L1_EPSILONS = {"digits-cnn": 4.0, "digits32-cnn": 10.0}
NOISE_STD = 0.1
JUDGE_DRAWS = 16

Run = Callable[[], torch.Tensor]


@dataclass(frozen=True)
class Budget:
    """What every library gets, per attack."""

    samples: int = 100
    slow_samples: int = 20  # JSMA at 32x32 and Sign-OPT, which are slow in every library
    repeats: int = 3
    gamma: float = 0.145
    signopt_queries: int = 4000
    fab_steps: int = 100
    pgd_steps: int = 20
    eot_steps: int = 20
    eot_samples: int = 10


FULL = Budget()
QUICK = Budget(
    samples=32,
    slow_samples=6,
    repeats=1,
    signopt_queries=600,
    fab_steps=20,
    pgd_steps=10,
    eot_steps=10,
    eot_samples=4,
)


class NoisyInput(torch.nn.Module):
    """Adds Gaussian noise of std ``std`` to the input on every forward pass (a random defense)."""

    def __init__(self, inner: torch.nn.Module, std: float) -> None:
        super().__init__()
        self.inner, self.std = inner, std

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.inner(z + self.std * torch.randn_like(z))
        return out


@dataclass
class Case:
    """One row group: label, norm, budget, samples, whether minimum-norm, and the runs."""

    label: str
    norm: Norm
    eps: float
    samples: int
    minimum_norm: bool
    randomised: bool = False
    runs: dict[str, Run] | None = None


def _has(module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError:
        print(f"{module} not installed; its runs skipped", file=sys.stderr)
        return None


# The seed of the current run in ``--seeds`` mode: bastion's attacks read it; the peers draw
# from the global torch and numpy generators, which that mode seeds with the same value.
_SEED = [0]


def _bastion_run(model: TorchModel, attack: Attack, x: torch.Tensor, y: torch.Tensor) -> Run:
    def run() -> torch.Tensor:
        attack.seed = _SEED[0]
        adv: torch.Tensor = attack(model, x, y).x_adv
        return adv

    return run


def _second_class(entry: ZooEntry, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        second: torch.Tensor = _wrapped(entry)(x).topk(2, dim=1).indices[:, 1]
    return second


Data = tuple[Any, ...]
Peers = tuple[Any, Any, Any]  # the torchattacks, ART and Foolbox modules, or None


def _data(entry: ZooEntry, n: int, model: torch.nn.Module | None = None) -> Data:
    x = torch.from_numpy(entry.test.x[:n])
    y = torch.from_numpy(entry.test.y[:n])
    net = model if model is not None else entry.model
    return x, y, TorchModel(net, **{**entry.adapter_options(), "batch_size": n})


def _jsma(entry: ZooEntry, b: Budget, peers: Peers) -> tuple[Case, Data]:
    ta, art, _ = peers
    n = b.samples if entry.name == "digits-cnn" else b.slow_samples
    x, y, tm = _data(entry, n)
    l0 = float(math.floor(b.gamma * math.prod(entry.input_shape)))
    case = Case(f"JSMA l0 {l0:g} (gamma {b.gamma})", Norm.L0, l0, n, True)
    attack = L0JacobianSaliencyMapAttack(epsilon=l0, gamma=b.gamma, batch_size=n)
    case.runs = {"bastion": _bastion_run(tm, attack, x, y)}
    logits = L0JacobianSaliencyMapAttack(
        epsilon=l0, gamma=b.gamma, use_probabilities=False, batch_size=n
    )
    case.runs["bastion (JSMA-Z, use_probabilities=False)"] = _bastion_run(tm, logits, x, y)
    target = _second_class(entry, x)
    if ta is not None:
        jsma = ta.JSMA(_wrapped(entry), theta=1.0, gamma=b.gamma)
        jsma.set_mode_targeted_by_function(lambda im, lab: target, quiet=True)
        case.runs[f"torchattacks {ta.__version__}"] = lambda: jsma(x, y)
    if art is not None:
        from art.attacks.evasion import SaliencyMapMethod

        sm = SaliencyMapMethod(
            _art_classifier(entry), theta=1.0, gamma=b.gamma, batch_size=n, verbose=False
        )
        xn, tn = x.numpy(), target.numpy()
        case.runs[f"ART {art.__version__}"] = lambda: torch.from_numpy(sm.generate(xn, tn))
    return case, (x, y)


def _signopt(entry: ZooEntry, b: Budget, peers: Peers) -> tuple[Case, Data]:
    art, n, q, l2 = peers[1], b.slow_samples, b.signopt_queries, epsilons(entry)[1]
    x, y, tm = _data(entry, n)
    case = Case(f"Sign-OPT l2 (eps {l2:g}), {q} queries", Norm.L2, l2, n, True)
    attack = L2SignOPTAttack(epsilon=l2, max_queries=q, batch_size=n)
    case.runs = {"bastion": _bastion_run(tm, attack, x, y)}
    if art is not None:
        from art.attacks.evasion import SignOPTAttack

        so = SignOPTAttack(
            _art_classifier(entry),
            targeted=False,
            query_limit=q,
            k=200,
            alpha=0.2,
            beta=0.001,
            batch_size=n,
            verbose=False,
        )
        xn, yn = x.numpy(), y.numpy()
        case.runs[f"ART {art.__version__}"] = lambda: torch.from_numpy(
            so.generate(xn, yn).astype(np.float32)
        )
    return case, (x, y)


def _fab(entry: ZooEntry, b: Budget, peers: Peers, norm: Norm) -> tuple[Case, Data]:
    ta, n, steps = peers[0], b.samples, b.fab_steps
    linf, l2 = epsilons(entry)
    eps = linf if norm is Norm.LINF else l2
    x, y, tm = _data(entry, n)
    case = Case(f"FAB {norm.value} {eps:g}, {steps} steps", norm, eps, n, True)
    cls = LinfFABAttack if norm is Norm.LINF else L2FABAttack
    case.runs = {"bastion": _bastion_run(tm, cls(epsilon=eps, steps=steps, batch_size=n), x, y)}
    if ta is not None:
        fab = ta.FAB(
            _wrapped(entry),
            norm="Linf" if norm is Norm.LINF else "L2",
            eps=eps,
            steps=steps,
            n_restarts=1,
            multi_targeted=False,
            n_classes=10,
        )
        case.runs[f"torchattacks {ta.__version__}"] = lambda: fab(x, y)
    return case, (x, y)


def _pgd_l1(entry: ZooEntry, b: Budget, peers: Peers) -> tuple[Case, Data]:
    _, art, fb = peers
    n, eps, steps = b.samples, L1_EPSILONS[entry.name], b.pgd_steps
    step = 2.5 * eps / steps
    x, y, tm = _data(entry, n)
    case = Case(f"PGD l1 {eps:g}, {steps} steps", Norm.L1, eps, n, False)
    attack = L1ProjectedGradientDescentAttack(epsilon=eps, steps=steps, stepsize=step, batch_size=n)
    case.runs = {"bastion": _bastion_run(tm, attack, x, y)}
    if fb is not None:
        model = fb.PyTorchModel(_wrapped(entry), bounds=(0.0, 1.0), device="cpu")
        slide = fb.attacks.SparseL1DescentAttack(
            quantile=0.99, abs_stepsize=step, steps=steps, random_start=True
        )
        case.runs[f"Foolbox {fb.__version__} (SLIDE)"] = lambda: slide(model, x, y, epsilons=eps)[1]
    if art is not None:
        from art.attacks.evasion import ProjectedGradientDescentPyTorch

        pgd = ProjectedGradientDescentPyTorch(
            _art_classifier(entry),
            norm=1,
            eps=eps,
            eps_step=step,
            max_iter=steps,
            num_random_init=1,
            batch_size=n,
            verbose=False,
        )
        xn, yn = x.numpy(), y.numpy()
        case.runs[f"ART {art.__version__} (dense l1 steps)"] = lambda: torch.from_numpy(
            pgd.generate(xn, yn)
        )
    return case, (x, y)


def _eot_pgd(entry: ZooEntry, b: Budget, peers: Peers) -> tuple[Case, Data]:
    ta, n, steps, draws, linf = peers[0], b.samples, b.eot_steps, b.eot_samples, epsilons(entry)[0]
    noisy = NoisyInput(entry.model, NOISE_STD / _std(entry)).eval()
    x, y, tm = _data(entry, n, noisy)
    case = Case(
        f"EOT-PGD linf {linf:g}, {steps} steps x {draws} draws, noise std {NOISE_STD}",
        Norm.LINF,
        linf,
        n,
        False,
        randomised=True,
    )
    attack = LinfEOTProjectedGradientDescentAttack(
        epsilon=linf, steps=steps, eot_samples=draws, batch_size=n
    )
    case.runs = {"bastion": _bastion_run(tm, attack, x, y)}
    if ta is not None:
        eot = ta.EOTPGD(
            _wrapped(replace(entry, model=noisy)),
            eps=linf,
            alpha=2.5 * linf / steps,
            steps=steps,
            eot_iter=draws,
        )
        case.runs[f"torchattacks {ta.__version__}"] = lambda: eot(x, y)
    return case, (x, y, noisy)


def build_cases(entry: ZooEntry, b: Budget, only: set[str]) -> list[tuple[Case, Data]]:
    """The chosen cases with bastion's and the installed peers' runs, and the data attacked."""
    peers = (_has("torchattacks"), _has("art"), _has("foolbox"))
    builders: dict[str, Callable[[], tuple[Case, Data]]] = {
        "jsma": lambda: _jsma(entry, b, peers),
        "sign-opt": lambda: _signopt(entry, b, peers),
        "fab-linf": lambda: _fab(entry, b, peers, Norm.LINF),
        "fab-l2": lambda: _fab(entry, b, peers, Norm.L2),
        "pgd-l1": lambda: _pgd_l1(entry, b, peers),
        "eot-pgd": lambda: _eot_pgd(entry, b, peers),
    }
    return [build() for key, build in builders.items() if key in only]


def _std(entry: ZooEntry) -> float:
    """The zoo normalisation's std: the noise layer sits after it, so its std is rescaled."""
    assert entry.std is not None
    return float(entry.std[0])


def _norms(delta: torch.Tensor, norm: Norm) -> torch.Tensor:
    """`lp_norm`, except that l0 ignores the float noise of the peers' untouched features."""
    if norm is Norm.L0:
        return (delta.flatten(1).abs() > 1e-6).sum(1).float()
    return lp_norm(delta, norm)


def score(entry: ZooEntry, case: Case, data: Any, adv: torch.Tensor) -> dict[str, Any]:
    """Success rate on the clean-correct digits, and (minimal-perturbation attacks) the median
    perturbation over them, failures counted as infinite (None when that median is)."""
    x, y = data[0], data[1]
    adv = adv.detach().cpu().float().reshape(x.shape)
    if case.norm is Norm.L0:
        adv = adv.clamp(0, 1)
        within = _norms(adv - x, Norm.L0) <= case.eps
    else:
        adv = (x + project(adv - x, case.norm, case.eps)).clamp(0, 1)
        within = torch.ones(len(x), dtype=torch.bool)
    module = _wrapped(entry) if not case.randomised else _wrapped(replace(entry, model=data[2]))
    draws = JUDGE_DRAWS if case.randomised else 1
    gen_state = torch.get_rng_state()
    torch.manual_seed(1234)
    with torch.no_grad():
        clean = torch.stack([module(x).argmax(1) == y for _ in range(draws)]).float().mean(0)
        wrong = torch.stack([module(adv).argmax(1) != y for _ in range(draws)]).float().mean(0)
    torch.set_rng_state(gen_state)
    correct = clean > 0.5
    success = wrong * within.float()
    rate = float(success[correct].mean()) if correct.any() else 0.0
    hit = correct & (success > 0.5)
    # The median over every clean-correct digit, a failure counting as infinitely large: a
    # median of the successes alone would reward a library for giving up on the hard digits.
    sizes = _norms(adv - x, case.norm)
    sizes = torch.where(hit, sizes, torch.full_like(sizes, math.inf))[correct]
    median = float(sizes.median()) if case.minimum_norm and len(sizes) else None
    return {
        "success_rate": rate,
        "median_norm": median if median is not None and math.isfinite(median) else None,
    }


def bench_model(entry: ZooEntry, budget: Budget, only: set[str]) -> list[dict[str, Any]]:
    """Every case on one zoo model; one row per library, with the forward rows it spent."""
    counter = CountingModule(entry.model).eval()
    entry = replace(entry, model=counter)
    rows: list[dict[str, Any]] = []
    spent: dict[str, int] = {}  # the forward rows of each library's last run

    def counted(name: str, fn: Run) -> Run:
        def run() -> torch.Tensor:
            counter.reset()
            out = fn()
            spent[name] = counter.forward_rows
            return out

        return run

    for case, data in build_cases(entry, budget, only):
        assert case.runs is not None
        runs = {name: counted(name, fn) for name, fn in case.runs.items()}
        torch.manual_seed(0)
        for library, (seconds, adv) in _interleaved(runs, budget.repeats).items():
            row = {
                "model": entry.name,
                "attack": case.label,
                "samples": case.samples,
                "library": library,
                "seconds": seconds,
                "forward_rows_per_sample": spent[library] / case.samples,
                **score(entry, case, data, adv),
            }
            rows.append(row)
            print(
                f"{entry.name} · {case.label} · {library}: {seconds:.2f}s, "
                f"success {100 * row['success_rate']:.1f} %",
                file=sys.stderr,
            )
    return rows


def seed_rows(entry: ZooEntry, budget: Budget, only: set[str], seeds: int) -> list[dict[str, Any]]:
    """Every chosen case run once per seed in every library: mean, sd and range of success.

    One run on a few digits moves by a digit with the seed (5 points on 20 digits), too much
    to tell libraries apart; this compares means. Nothing is timed.
    """
    rows: list[dict[str, Any]] = []
    for case, data in build_cases(entry, budget, only):
        assert case.runs is not None
        for library, fn in case.runs.items():
            rates, sizes = [], []
            for seed in range(seeds):
                _SEED[0] = seed
                torch.manual_seed(seed)
                np.random.seed(seed)
                got = score(entry, case, data, fn())
                rates.append(100 * got["success_rate"])
                if got["median_norm"] is not None:
                    sizes.append(got["median_norm"])
            rows.append(
                {
                    "model": entry.name,
                    "attack": case.label,
                    "samples": case.samples,
                    "library": library,
                    "seeds": seeds,
                    "success_mean": statistics.mean(rates),
                    "success_sd": statistics.stdev(rates) if seeds > 1 else 0.0,
                    "success_min": min(rates),
                    "success_max": max(rates),
                    "median_norm_mean": statistics.mean(sizes) if sizes else None,
                }
            )
            print(f"{entry.name} · {case.label} · {library}: {rates}", file=sys.stderr)
    _SEED[0] = 0
    return rows


def _print_seed_table(rows: list[dict[str, Any]]) -> None:
    print(
        "\n| model | attack | digits | library | seeds | success mean | sd | min-max "
        "| median perturbation (mean) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        size = "" if r["median_norm_mean"] is None else f"{r['median_norm_mean']:.3g}"
        print(
            f"| {r['model']} | {r['attack']} | {r['samples']} | {r['library']} | {r['seeds']} "
            f"| {r['success_mean']:.1f} % | {r['success_sd']:.1f} "
            f"| {r['success_min']:.1f}-{r['success_max']:.1f} | {size} |"
        )


def _print_table(meta: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    print(f"\n{meta['date']} · {meta['machine']}")
    print(
        "\n| model | attack | digits | library | seconds | time ratio to bastion "
        "| forward rows / digit | success rate | median perturbation |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    ours = {(r["model"], r["attack"]): r["seconds"] for r in rows if r["library"] == "bastion"}
    for r in rows:
        size = "" if r["median_norm"] is None else f"{r['median_norm']:.3g}"
        print(
            f"| {r['model']} | {r['attack']} | {r['samples']} | {r['library']} "
            f"| {r['seconds']:.2f} | {r['seconds'] / ours[(r['model'], r['attack'])]:.2f}x "
            f"| {r['forward_rows_per_sample']:,.0f} | {100 * r['success_rate']:.1f} % | {size} |"
        )


def main(argv: list[str] | None = None) -> None:
    """Run the table for the chosen models; save it unless ``--quick`` (without ``--out``)."""
    parser = argparse.ArgumentParser(prog="python -m bench.new_attacks", description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="small budgets; writes nothing unless --out"
    )
    parser.add_argument("--out", default=None, help="results file (default: bench/results/)")
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated zoo names")
    parser.add_argument(
        "--attacks", default=",".join(CASES), help=f"comma-separated cases of {', '.join(CASES)}"
    )
    parser.add_argument(
        "--seeds",
        type=int,
        default=0,
        help="instead of timing, run each case with this many seeds and compare mean success "
        "(writes new_attacks_seeds.json)",
    )
    args = parser.parse_args(argv)
    budget = QUICK if args.quick else FULL
    if "BENCH_REPEATS" in os.environ:
        budget = replace(budget, repeats=int(os.environ["BENCH_REPEATS"]))
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    only = {a for a in args.attacks.split(",") if a}
    if args.seeds > 0:
        seeded = [
            r
            for name in args.models.split(",")
            for r in seed_rows(load_zoo_model(name), budget, only, args.seeds)
        ]
        seed_out = Path(args.out) if args.out else RESULTS / "new_attacks_seeds.json"
        if not args.quick or args.out:
            info = {"date": date.today().isoformat(), "budget": asdict(budget)}
            seed_out.write_text(json.dumps({"meta": info, "results": seeded}, indent=2) + "\n")
        _print_seed_table(seeded)
        return
    rows: list[dict[str, Any]] = []
    for name in args.models.split(","):
        rows += bench_model(load_zoo_model(name), budget, only)
    meta = {
        "date": date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads",
        "models": [f"zoo:{m}" for m in args.models.split(",")],
        "budget": asdict(budget),
        "l1_epsilons": L1_EPSILONS,
        "noise_std": NOISE_STD,
        "quick": args.quick,
    }
    out = Path(args.out) if args.out else None if args.quick else RESULTS / "new_attacks.json"
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"meta": meta, "results": rows}, indent=2) + "\n")
    _print_table(meta, rows)


if __name__ == "__main__":
    main()
