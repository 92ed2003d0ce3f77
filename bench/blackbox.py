"""Black-box attacks side by side: bastion's Square, HopSkipJump and Boundary vs ART, Foolbox.

Run with ``python -m bench.blackbox``. Writes ``bench/results/blackbox.json`` and prints a
Markdown table. Same model (the embedded digits CNN), same digits, same query budgets. ART's
queries are counted by a forward hook on the network (every row it classifies); bastion's
come from its query counter. For HopSkipJump ART runs a fixed number of iterations; bastion
then gets the same number of queries per sample that ART used on average. Foolbox, when
installed, runs HopSkipJump for the same number of iterations as ART and Boundary (one query
a step) for as many steps as ART used queries; its queries, counted by the same hook, include
the starting points it searches for first. Median perturbations are over all attacked
digits, a failure counting as infinite.

For each decision-based attack the bench also times the bare network classifying as many
random rows as ART queried (``network_floor_seconds``): every implementation must run the
network that many times at ART's query count, so ``art_over_floor`` (ART's seconds over the
floor) is the largest speed-up over ART any implementation could reach on this model.
"""

from __future__ import annotations

import importlib
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from datetime import date
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bastion.attacks import (
    L2BoundaryAttack,
    L2HopSkipJumpAttack,
    L2SquareAttack,
    LinfSquareAttack,
)
from bastion.data import load_zoo_model
from bastion.models import TorchModel
from bench.evasion_peers import Normalize

RESULTS = Path(__file__).with_name("results")
SAMPLES = 100
HSJ_SAMPLES = 50
SQUARE_QUERIES = 1000
HSJ_ITERATIONS = 5
BOUNDARY_ITERATIONS = 200
FLOOR_CHUNKS = (100, 250, 500, 2000)


class _Rows:
    """Counts the rows a torch module is asked to classify (ART's queries)."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.count = 0
        module.register_forward_hook(self._hook)

    def _hook(self, module: torch.nn.Module, args: Any, output: Any) -> None:
        self.count += int(args[0].shape[0])


class _Float32(torch.nn.Module):
    """Casts inputs to float32: ART's HopSkipJump hands the network float64 arrays."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.inner(x.float())
        return out


def _median(sizes: np.ndarray, ok: np.ndarray) -> float:
    """The median perturbation over all samples, a failure counting as infinite: a median of
    the successes alone would reward giving up on the hardest samples."""
    return float(np.median(np.where(ok.astype(bool), sizes, np.inf)))


def _timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def _network_floor(net: torch.nn.Module, rows: int, shape: tuple[int, ...]) -> float:
    """Seconds the bare network takes to classify ``rows`` random rows, batched as well as
    this CPU allows: each chunk size of `FLOOR_CHUNKS` once, then the fastest twice more;
    the median of its three runs."""
    x = torch.rand((rows, *shape))

    def once(chunk: int) -> float:
        start = time.perf_counter()
        with torch.inference_mode():
            for i in range(0, rows, chunk):
                net(x[i : i + chunk]).argmax(dim=1)
        return time.perf_counter() - start

    first = {chunk: once(chunk) for chunk in FLOOR_CHUNKS}
    fastest = min(first, key=first.__getitem__)
    return statistics.median([first[fastest], once(fastest), once(fastest)])


def main() -> None:
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    entry = load_zoo_model("digits-cnn")
    module = entry.model.eval()
    wrapped = _Float32(module).eval()
    rows = _Rows(wrapped)
    x = torch.from_numpy(entry.test.x[:SAMPLES])
    y = torch.from_numpy(entry.test.y[:SAMPLES])
    model = TorchModel(module, input_shape=entry.input_shape, mean=entry.mean, std=entry.std)
    scores, labels = model.restricted("scores"), model.restricted("labels")
    results: list[dict[str, Any]] = []

    try:
        import art
        from art.attacks.evasion import BoundaryAttack, HopSkipJump, SquareAttack
        from art.estimators.classification import PyTorchClassifier
    except ImportError:
        print("adversarial-robustness-toolbox not installed; nothing to compare", file=sys.stderr)
        return
    mean = np.asarray(entry.mean, dtype=np.float32).reshape(-1, 1, 1)
    std = np.asarray(entry.std, dtype=np.float32).reshape(-1, 1, 1)
    clf = PyTorchClassifier(
        model=wrapped,
        loss=torch.nn.CrossEntropyLoss(),
        input_shape=entry.input_shape,
        nb_classes=entry.num_classes,
        clip_values=(0.0, 1.0),
        preprocessing=(mean, std),
        device_type="cpu",
    )
    art_name = "ART " + art.__version__

    def accuracy(adv: np.ndarray | torch.Tensor, ys: torch.Tensor) -> float:
        with model.counter.paused():
            return float((model.labels(torch.as_tensor(adv)) == ys).float().mean())

    # Square Attack at equal per-sample query caps and the same p_init.
    for norm, eps, cls, p_init in (
        ("linf", 0.2, LinfSquareAttack, 0.05),
        ("linf", 0.15, LinfSquareAttack, 0.05),
        ("l2", 1.0, L2SquareAttack, 0.1),
    ):
        ours = cls(epsilon=eps, max_queries=SQUARE_QUERIES, p_init=p_init)
        model.counter.reset()
        res, ours_s = _timed(partial(ours, scores, x, y))
        theirs = SquareAttack(
            clf,
            norm=np.inf if norm == "linf" else 2,
            max_iter=SQUARE_QUERIES,
            eps=eps,
            p_init=p_init,
            nb_restarts=1,
            batch_size=SAMPLES,
            verbose=False,
        )
        rows.count = 0
        adv, art_s = _timed(partial(theirs.generate, x.numpy(), y.numpy()))
        results.append(
            {
                "attack": f"square-{norm} eps {eps:g}, <= {SQUARE_QUERIES} queries/sample",
                "bastion": {
                    "seconds": ours_s,
                    "robust_accuracy": res.robust_accuracy,
                    "queries_per_sample": res.queries / SAMPLES,
                },
                art_name: {
                    "seconds": art_s,
                    "robust_accuracy": accuracy(adv, y),
                    "queries_per_sample": rows.count / SAMPLES,
                },
            }
        )

    # Decision-based, l2: ART for a fixed number of iterations, bastion at ART's query count.
    xh, yh = x[:HSJ_SAMPLES], y[:HSJ_SAMPLES]
    decision: list[tuple[str, Any, Callable[[int], Any], Callable[[Any, int], Any]]] = [
        (
            "hsj-l2",
            HopSkipJump(
                clf, norm=2, max_iter=HSJ_ITERATIONS, max_eval=10000, init_eval=100, verbose=False
            ),
            lambda q: L2HopSkipJumpAttack(epsilon=100.0, max_queries=q),
            lambda fa, q: fa.HopSkipJumpAttack(
                steps=HSJ_ITERATIONS,
                initial_gradient_eval_steps=100,
                max_gradient_eval_steps=10000,
                constraint="l2",
            ),
        ),
        (
            "boundary-l2",
            BoundaryAttack(clf, targeted=False, max_iter=BOUNDARY_ITERATIONS, verbose=False),
            lambda q: L2BoundaryAttack(epsilon=100.0, max_queries=q),
            # one query per step: as many steps as ART's queries (plus its starting points)
            lambda fa, q: fa.BoundaryAttack(steps=q),
        ),
    ]
    foolbox: Any = None
    try:
        foolbox = importlib.import_module("foolbox")  # untyped: keep mypy out of it
    except ImportError:
        print("foolbox not installed; skipped", file=sys.stderr)
    for name, theirs_d, make, make_foolbox in decision:
        rows.count = 0
        adv, art_s = _timed(partial(theirs_d.generate, xh.numpy()))
        art_queries = rows.count / HSJ_SAMPLES
        floor = _network_floor(wrapped, rows.count, tuple(entry.input_shape))
        art_sizes = np.linalg.norm((adv - xh.numpy()).reshape(HSJ_SAMPLES, -1), axis=1)
        with model.counter.paused():
            art_success = (model.labels(torch.as_tensor(adv)) != yh).numpy()
        ours_d = make(int(art_queries))
        model.counter.reset()
        res, ours_s = _timed(partial(ours_d, labels, xh, yh))
        results.append(
            {
                "attack": f"{name}, {int(art_queries)} queries/sample",
                "bastion": {
                    "seconds": ours_s,
                    "success_rate": res.success_rate,
                    "median_l2": _median(res.norms.numpy(), res.success.numpy()),
                    "queries_per_sample": res.queries / HSJ_SAMPLES,
                },
                art_name: {
                    "seconds": art_s,
                    "success_rate": float(art_success.mean()),
                    "median_l2": _median(art_sizes, art_success),
                    "queries_per_sample": art_queries,
                    "network_floor_seconds": floor,
                    "art_over_floor": art_s / floor,
                },
            }
        )
        if foolbox is not None:
            results[-1]["Foolbox " + foolbox.__version__] = _foolbox_decision(
                foolbox, make_foolbox, int(art_queries), wrapped, entry, rows, xh, yh
            )

    meta = {
        "date": date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads",
        "python": platform.python_version(),
        "model": "zoo:digits-cnn",
        "samples": SAMPLES,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "blackbox.json").write_text(
        json.dumps({"meta": meta, "results": results}, indent=2) + "\n"
    )
    print(f"\n{meta['date']} · {meta['machine']}\n")
    print(
        "| attack | implementation | seconds | time ratio | over network floor | "
        "queries/sample | outcome |"
    )
    print("|---|---|---|---|---|---|---|")
    for row in results:
        ours_s = row["bastion"]["seconds"]
        floor = row.get(art_name, {}).get("network_floor_seconds")
        for name in (key for key in row if key != "attack"):
            r = row[name]
            if "median_l2" in r:
                outcome = f"success {r['success_rate']:.0%}, median l2 {r['median_l2']:.3f}"
            else:
                outcome = f"robust accuracy {r['robust_accuracy']:.0%}"
            over = "" if floor is None else f"{r['seconds'] / floor:.1f}x"
            print(
                f"| {row['attack']} | {name} | {r['seconds']:.2f} | {r['seconds'] / ours_s:.1f}x "
                f"| {over} | {r['queries_per_sample']:.0f} | {outcome} |"
            )
        if floor is not None:
            print(
                f"| {row['attack']} | network alone (floor) | {floor:.2f} | "
                f"{floor / ours_s:.1f}x | 1.0x | {row[art_name]['queries_per_sample']:.0f} | "
                f"ART / floor {row[art_name]['art_over_floor']:.1f}x |"
            )


def _foolbox_decision(
    foolbox: Any,
    make: Callable[[Any, int], Any],
    queries: int,
    wrapped: torch.nn.Module,
    entry: Any,
    rows: _Rows,
    x: torch.Tensor,
    y: torch.Tensor,
) -> dict[str, float]:
    """One Foolbox decision-based run (its default starting points included), as a row."""
    mean = torch.tensor(entry.mean, dtype=torch.float32).view(-1, 1, 1)
    std = torch.tensor(entry.std, dtype=torch.float32).view(-1, 1, 1)
    net = torch.nn.Sequential(Normalize(mean, std), wrapped).eval()
    model = foolbox.PyTorchModel(net, bounds=(0.0, 1.0), device="cpu")
    attack = make(foolbox.attacks, queries)
    rows.count = 0
    (_, adv, success), seconds = _timed(partial(attack, model, x, y, epsilons=None))
    ok = success.cpu().numpy().astype(bool)
    sizes = torch.linalg.vector_norm((adv - x).flatten(1), dim=1).numpy()
    return {
        "seconds": seconds,
        "success_rate": float(ok.mean()),
        "median_l2": _median(sizes, ok),
        "queries_per_sample": rows.count / len(x),
    }


if __name__ == "__main__":
    main()
