"""White-box evasion attacks side by side: bastion against torchattacks, ART and Foolbox.

Run with ``python -m bench.evasion`` (``--quick`` for a small smoke run that writes nothing).
Two models, the embedded digits CNN at 8x8 (``zoo:digits-cnn``) and the wider CNN on the same
digits upsampled to 32x32 (``zoo:digits32-cnn``), attacked on the same held-out digits with
the same budget in every library. Each row reports the median wall time over repeats (the
libraries timed in turn, round by round, so load on a shared machine hits all alike), its
ratio to bastion's, and the robust accuracy of what the library returned, measured one way for
all: every adversarial is projected onto the epsilon-ball and the input bounds first (as
bastion's base class does), so a minimal-perturbation attack that overshoots gets no credit.

The epsilons differ between the models (``bench.evasion_peers.EPSILONS``: linf 0.15 and l2
1.0 at 8x8, linf 0.1 and l2 2.0 at 32x32), chosen so that robust accuracies stay away from 0 %
and the table can tell a stronger attack from a weaker one.

A second table times linf PGD per iteration against a bare torch forward+backward loop (the
issue's target: within 1.1x at 32x32, 20 steps, 397 images). Writes
``bench/results/evasion.json`` and prints Markdown tables.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from bastion.attacks import (
    L2CarliniWagnerAttack,
    L2DeepFoolAttack,
    L2ProjectedGradientDescentAttack,
    LinfAPGDCEAttack,
    LinfAPGDDLRAttack,
    LinfAPGDTargetedAttack,
    LinfFABTargetedAttack,
    LinfFastGradientAttack,
    LinfMomentumIterativeAttack,
    LinfProjectedGradientDescentAttack,
)
from bastion.attacks.norms import project
from bastion.core.threat_model import Norm
from bastion.data import ZooEntry, load_zoo_model
from bastion.models import TorchModel
from bench.evasion_peers import EPSILONS, PEERS, Case, Normalize, Run, epsilons, pgd_runs

_Normalize = Normalize  # the name bench/seeds.py imports

RESULTS = Path(__file__).with_name("results")
MODELS = ("digits-cnn", "digits32-cnn")
# A run slower than this many seconds is timed once, without a warm-up run.
SLOW = 10.0
# Fast runs are repeated for about this many seconds (at most MAX_ROUNDS rounds).
BRIEF = 3.0
MAX_ROUNDS = 200


@dataclass(frozen=True)
class Budget:
    """What every library gets, per attack; the epsilons are per model (`EPSILONS`)."""

    samples: int = 300
    repeats: int = 3
    pgd_steps: int = 20
    apgd_steps: int = 100
    targets: int = 9
    fab_steps: int = 100
    mi_steps: int = 10
    deepfool_steps: int = 50
    cw_rounds: int = 4
    cw_steps: int = 50
    cw_lr: float = 0.5
    cw_c: float = 1.0
    # the PGD-per-iteration table
    pgd_images: int = 397
    pgd_iter_steps: int = 20
    pgd_iter_repeats: int = 7


FULL = Budget()
QUICK = Budget(
    samples=48,
    repeats=1,
    apgd_steps=20,
    targets=3,
    fab_steps=20,
    deepfool_steps=20,
    cw_rounds=2,
    cw_steps=20,
    pgd_images=128,
    pgd_iter_steps=10,
    pgd_iter_repeats=1,
)


def _interleaved(
    runs: dict[str, Run], repeats: int, slow: float = SLOW
) -> dict[str, tuple[float, torch.Tensor]]:
    """Median seconds and the last output of each run, timed in interleaved rounds.

    Round one runs every library once (a warm-up); each later round runs each library once
    more, in turn, so a burst of load on a shared machine hits all of them alike. A run
    slower than ``slow`` seconds in round one is timed by that run alone. There are
    ``repeats - 1`` later rounds, more when every run is brief (see ``BRIEF``).
    """
    first: dict[str, tuple[float, torch.Tensor]] = {}
    for name, fn in runs.items():
        start = time.perf_counter()
        out = fn()
        first[name] = (time.perf_counter() - start, out)
    again = [name for name, (secs, _) in first.items() if secs <= slow and repeats > 1]
    times: dict[str, list[float]] = {name: [] for name in again}
    outs = {name: out for name, (_, out) in first.items()}
    # Runs of a few milliseconds get more rounds (about BRIEF seconds of the slowest of them),
    # so that a median of three cannot be decided by one scheduler hiccup.
    slowest = max((first[name][0] for name in again), default=BRIEF)
    rounds = max(repeats - 1, min(MAX_ROUNDS, math.ceil(BRIEF / max(slowest, 1e-6))))
    for _ in range(rounds if repeats > 1 else 0):
        for name in again:
            start = time.perf_counter()
            outs[name] = runs[name]()
            times[name].append(time.perf_counter() - start)
    return {
        name: (statistics.median(times[name]) if name in times else secs, outs[name])
        for name, (secs, _) in first.items()
    }


def cases_for(entry: ZooEntry, budget: Budget) -> dict[str, Case]:
    """Every attack of the table with bastion's run; the peers add theirs (bench.evasion_peers)."""
    b = budget
    linf, l2 = epsilons(entry)
    n = b.samples

    def case(label: str, norm: Norm, eps: float, attack: Any, call: bool = False) -> Case:
        # "bastion" times `generate`: the examples only, what every peer returns. With
        # ``call``, "bastion (call)" also times the full call, whose success measurement costs
        # one more forward pass (two after a random start): a visible share of a short attack.
        runs: dict[str, Run] = {"bastion": lambda: attack.generate(model, x, y)}
        if call:
            runs["bastion (call)"] = lambda: attack(model, x, y).x_adv
        return Case(label, norm, eps, runs)

    x = torch.from_numpy(entry.test.x[:n])
    y = torch.from_numpy(entry.test.y[:n])
    model = TorchModel(entry.model, **{**entry.adapter_options(), "batch_size": n})
    steps = b.pgd_steps
    cases = {
        "fgsm": case(
            f"FGSM linf {linf}",
            Norm.LINF,
            linf,
            LinfFastGradientAttack(epsilon=linf, batch_size=n),
            call=True,
        ),
        "pgd-linf": case(
            f"PGD linf {linf}, {steps} steps",
            Norm.LINF,
            linf,
            LinfProjectedGradientDescentAttack(
                epsilon=linf, steps=steps, stepsize=2.5 * linf / steps, batch_size=n
            ),
            call=True,
        ),
        "pgd-l2": case(
            f"PGD l2 {l2:g}, {steps} steps",
            Norm.L2,
            l2,
            L2ProjectedGradientDescentAttack(
                epsilon=l2, steps=steps, stepsize=2.5 * l2 / steps, batch_size=n
            ),
            call=True,
        ),
        "apgd-ce": case(
            f"APGD-CE linf {linf}, {b.apgd_steps} steps",
            Norm.LINF,
            linf,
            LinfAPGDCEAttack(epsilon=linf, steps=b.apgd_steps, batch_size=n),
        ),
        "apgd-dlr": case(
            f"APGD-DLR linf {linf}, {b.apgd_steps} steps",
            Norm.LINF,
            linf,
            LinfAPGDDLRAttack(epsilon=linf, steps=b.apgd_steps, batch_size=n),
        ),
        "apgd-t": case(
            f"APGD-T linf {linf}, {b.targets} targets x {b.apgd_steps} steps",
            Norm.LINF,
            linf,
            LinfAPGDTargetedAttack(
                epsilon=linf, steps=b.apgd_steps, target_classes=b.targets, batch_size=n
            ),
        ),
        "fab-t": case(
            f"FAB-T linf {linf}, {b.targets} targets x {b.fab_steps} steps",
            Norm.LINF,
            linf,
            LinfFABTargetedAttack(
                epsilon=linf, steps=b.fab_steps, target_classes=b.targets, batch_size=n
            ),
        ),
        "mi-fgsm": case(
            f"MI-FGSM linf {linf}, {b.mi_steps} steps",
            Norm.LINF,
            linf,
            LinfMomentumIterativeAttack(epsilon=linf, steps=b.mi_steps, batch_size=n),
            call=True,
        ),
        "deepfool": case(
            f"DeepFool l2 (eps {l2:g}), {b.deepfool_steps} steps",
            Norm.L2,
            l2,
            L2DeepFoolAttack(epsilon=l2, steps=b.deepfool_steps, batch_size=n),
        ),
        "cw": case(
            f"C&W L2 (eps {l2:g}), {b.cw_rounds} x {b.cw_steps} steps",
            Norm.L2,
            l2,
            L2CarliniWagnerAttack(
                epsilon=l2,
                binary_search_steps=b.cw_rounds,
                steps=b.cw_steps,
                lr=b.cw_lr,
                initial_const=b.cw_c,
                batch_size=n,
            ),
        ),
    }
    # C&W as torchattacks runs it: one constant c for all the steps, no binary search.
    fixed = L2CarliniWagnerAttack(
        epsilon=l2,
        binary_search_steps=1,
        steps=b.cw_rounds * b.cw_steps,
        lr=b.cw_lr,
        initial_const=b.cw_c,
        batch_size=n,
    )
    cases["cw"].runs[f"bastion (1 x {b.cw_rounds * b.cw_steps} steps, fixed c)"] = lambda: (
        fixed.generate(model, x, y)
    )
    return cases


def bench_model(
    entry: ZooEntry, budget: Budget, only: set[str] | None, skip: set[str]
) -> list[dict[str, Any]]:
    """Run every case on one zoo model in bastion and each installed peer; one row per run.

    ``only`` keeps the named cases; ``skip`` drops single runs named ``library:case`` (the
    library as the first word of its tag, any case, e.g. ``art:cw``), on every model or, as
    ``digits32-cnn/art:cw``, on one.
    """
    n = budget.samples
    x = torch.from_numpy(entry.test.x[:n])
    y = torch.from_numpy(entry.test.y[:n])
    judge = TorchModel(entry.model, **{**entry.adapter_options(), "batch_size": n})
    cases = cases_for(entry, budget)
    if only:
        cases = {k: v for k, v in cases.items() if k in only}
    for add in PEERS:
        add(cases, entry, x, y, budget)
    for key, case in cases.items():
        for library in list(case.runs):
            run = f"{library.split()[0].lower()}:{key}"
            if run in skip or f"{entry.name}/{run}" in skip:
                del case.runs[library]

    def robust(adv: torch.Tensor, norm: Norm, eps: float) -> float:
        adv = (x + project(adv.detach().cpu().float() - x, norm, eps)).clamp(0, 1)
        return float((judge.labels(adv) == y).float().mean())

    rows: list[dict[str, Any]] = []
    for case in cases.values():
        for library, (seconds, adv) in _interleaved(case.runs, budget.repeats).items():
            rows.append(
                {
                    "model": entry.name,
                    "attack": case.label,
                    "library": library,
                    "seconds": seconds,
                    "robust_accuracy": robust(adv, case.norm, case.eps),
                }
            )
            print(f"{entry.name} · {case.label} · {library}: {seconds:.2f}s", file=sys.stderr)
    return rows


def bench_pgd_iteration(entry: ZooEntry, budget: Budget) -> dict[str, Any]:
    """Seconds per linf PGD iteration: a bare torch loop, bastion and the peers, same batch."""
    count, steps, eps = budget.pgd_images, budget.pgd_iter_steps, epsilons(entry)[0]
    x = torch.from_numpy(entry.test.x[:count])
    y = torch.from_numpy(entry.test.y[:count])
    module = entry.model.eval()
    assert entry.mean is not None and entry.std is not None
    mean = torch.tensor(entry.mean, dtype=torch.float32).view(-1, 1, 1)
    std = torch.tensor(entry.std, dtype=torch.float32).view(-1, 1, 1)
    alpha = 2.5 * eps / steps

    def bare() -> torch.Tensor:
        gen = torch.Generator().manual_seed(0)
        adv = (x + (torch.rand(x.shape, generator=gen) * 2 - 1) * eps).clamp(0, 1)
        for _ in range(steps):
            adv = adv.detach().requires_grad_(True)
            loss = F.cross_entropy(module((adv - mean) / std), y, reduction="sum")
            (grad,) = torch.autograd.grad(loss, adv)
            adv = adv + alpha * grad.sign()
            adv = (x + (adv - x).clamp(-eps, eps)).clamp(0, 1)
        return adv

    model = TorchModel(module, **{**entry.adapter_options(), "batch_size": count})
    attack = LinfProjectedGradientDescentAttack(
        epsilon=eps, steps=steps, stepsize=alpha, batch_size=count
    )
    runs: dict[str, Run] = {
        "bare torch loop": bare,
        "bastion": lambda: attack.generate(model, x, y),
        "bastion (call)": lambda: attack(model, x, y).x_adv,
    }
    runs.update(pgd_runs(entry, x, y, eps=eps, alpha=alpha, steps=steps))
    per_step: dict[str, float] = {}
    timed = _interleaved(runs, budget.pgd_iter_repeats + 1, slow=math.inf)
    for name, (seconds, _) in timed.items():
        per_step[name] = seconds / steps
        print(
            f"{entry.name} · PGD per iteration · {name}: {per_step[name] * 1e3:.2f} ms",
            file=sys.stderr,
        )
    base = per_step["bare torch loop"]
    return {
        "model": entry.name,
        "images": count,
        "steps": steps,
        "seconds_per_iteration": per_step,
        "ratio_to_bare_loop": {k: v / base for k, v in per_step.items()},
    }


def _print_tables(meta: dict[str, Any], rows: list[dict[str, Any]], pgd: list[Any]) -> None:
    print(f"\n{meta['date']} · {meta['machine']} · {meta['budget']['samples']} digits")
    if rows:
        print("\n| model | attack | library | seconds | time ratio to bastion | robust accuracy |")
        print("|---|---|---|---|---|---|")
    ours = {(r["model"], r["attack"]): r["seconds"] for r in rows if r["library"] == "bastion"}
    for r in rows:
        ratio = r["seconds"] / ours[(r["model"], r["attack"])]
        print(
            f"| {r['model']} | {r['attack']} | {r['library']} | {r['seconds']:.2f} "
            f"| {ratio:.2f}x | {100 * r['robust_accuracy']:.1f} % |"
        )
    if not pgd:
        return
    print("\n| model | images x steps | implementation | ms / iteration | ratio to bare loop |")
    print("|---|---|---|---|---|")
    for res in pgd:
        for name, secs in res["seconds_per_iteration"].items():
            ratio = res["ratio_to_bare_loop"][name]
            print(
                f"| {res['model']} | {res['images']} x {res['steps']} | {name} "
                f"| {secs * 1e3:.2f} | {ratio:.2f}x |"
            )


def _merged(
    old: dict[str, Any], rows: list[dict[str, Any]], pgd: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The new rows and PGD tables, plus the old ones for the (model, attack) pairs and models
    this run did not measure, in the old order."""
    fresh = {(r["model"], r["attack"]) for r in rows}
    kept = [r for r in old.get("results", []) if (r["model"], r["attack"]) not in fresh]
    new_models = {p["model"] for p in pgd}
    kept_pgd = [p for p in old.get("pgd_per_iteration", []) if p["model"] not in new_models]
    return kept + rows, kept_pgd + pgd


def main(argv: list[str] | None = None) -> None:
    """Run the tables for the chosen models; save them unless ``--quick`` (without ``--out``)."""
    parser = argparse.ArgumentParser(prog="python -m bench.evasion", description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="small budgets; writes nothing unless --out"
    )
    parser.add_argument("--out", default=None, help="results file (default: bench/results/)")
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated zoo names")
    parser.add_argument("--attacks", default="", help="comma-separated case ids (default: all)")
    parser.add_argument(
        "--skip",
        default="",
        help="library:case runs to leave out (comma-separated; MODEL/library:case for one "
        "model), e.g. digits32-cnn/art:cw",
    )
    parser.add_argument(
        "--update",
        action="store_true",
        help="keep the existing file's rows for the models and cases not rerun",
    )
    tables = parser.add_mutually_exclusive_group()
    tables.add_argument("--no-pgd-iteration", action="store_true", help="skip that table")
    tables.add_argument("--only-pgd-iteration", action="store_true", help="only that table")
    args = parser.parse_args(argv)
    budget = QUICK if args.quick else FULL
    if "BENCH_SAMPLES" in os.environ:
        budget = replace(budget, samples=int(os.environ["BENCH_SAMPLES"]))
    if "BENCH_REPEATS" in os.environ:
        budget = replace(budget, repeats=int(os.environ["BENCH_REPEATS"]))
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    only = {a for a in args.attacks.split(",") if a} or None
    skip = {s.lower() for s in args.skip.split(",") if s}
    rows: list[dict[str, Any]] = []
    pgd: list[dict[str, Any]] = []
    for name in args.models.split(","):
        entry = load_zoo_model(name)
        if not args.only_pgd_iteration:
            rows += bench_model(entry, budget, only, skip)
        if not args.no_pgd_iteration:
            pgd.append(bench_pgd_iteration(entry, budget))
    meta = {
        "date": date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads",
        "models": [f"zoo:{m}" for m in args.models.split(",")],
        "epsilons_linf_l2": {m: EPSILONS[m] for m in args.models.split(",")},
        "budget": asdict(budget),
        "quick": args.quick,
        "skipped": sorted(skip),
    }
    out = Path(args.out) if args.out else None if args.quick else RESULTS / "evasion.json"
    if out is not None and args.update and out.exists():
        rows, pgd = _merged(json.loads(out.read_text()), rows, pgd)
        meta["updated"] = sorted({f"{r['model']}: {r['attack']}" for r in rows})
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(
            json.dumps({"meta": meta, "results": rows, "pgd_per_iteration": pgd}, indent=2) + "\n"
        )
    _print_tables(meta, rows, pgd)


if __name__ == "__main__":
    main()
