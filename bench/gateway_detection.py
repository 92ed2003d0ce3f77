"""Query-attack detection at the gateway: queries until the first flag, benign false positives.

Run ``OMP_NUM_THREADS=1 python bench/gateway_detection.py [--seeds 5] [--benign 20000]``.
It serves the digits CNN with every guard on, once with the gateway's default settings (whose
detectors tolerate re-sends) and once with the papers' parameters (`CONFIGS`: Blacklight
flags on the first near-duplicate, the k-NN score skips no neighbour, PRADA counts every
distance; the boundary CUSUM, which follows no paper, at `BoundaryGuard`'s own defaults:
half an attack's answers near the boundary, false-alarm level 1e-6), and measures, in one
run:

* attacks: bastion's Square Attack (``square-linf``, epsilon 0.1, on scores rounded to 4
  decimals) and HopSkipJump (``hsj-l2``, epsilon 2.0, on labels), each on ``--seeds`` test
  digits the model gets right, against a live gateway (uvicorn on 127.0.0.1, a fresh one per
  run) through `RemoteModel`, one sample per request, with 1 API key and rotating over 10.
  The gateway's audit log gives the query at which a detector first flagged the attack (and
  each detector's own first flag). An attack that succeeds before its first flag evaded.
* benign traffic: every embedded digit (1,797) sent one to three times in a row by one of 8
  clients, each time with fresh Gaussian noise (sigma 0.02), through the gateway's guard
  pipeline without HTTP (the app runs the same pipeline). The embedded set holds only 1,797
  distinct digits, so a stream of ``--benign`` requests is made of independent passes, each
  against a fresh pipeline, as if the guards' state were reset between them (Blacklight's
  authors reset their index daily). The false-positive rate is the share of requests a
  query-attack detector (Blacklight, nearest neighbours, boundary) flagged, with its
  one-sided 95% Clopper-Pearson upper bound; PRADA (a model-extraction detector) is counted
  on its own, with its bound too.

Rate limits are raised out of the way (they are measured by bench/gateway.py). Writes
``bench/results/gateway_detection.json`` and prints Markdown tables.
"""

from __future__ import annotations

import argparse
import json
import platform
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import torch
import uvicorn
from scipy.stats import beta

from bastion.attacks.registry import get_attack
from bastion.data import load_zoo_model
from bastion.defenses.guards import BoundaryGuard, NearestNeighbourGuard
from bastion.gateway import GatewaySettings, Served, Store, create_app, load_served
from bastion.gateway.pipeline import DETECTORS, Pipeline
from bastion.models import RemoteModel

RESULTS = Path(__file__).with_name("results")
QUERY_DETECTORS = ("blacklight", "nearest-neighbour", "boundary")
#: Guard settings per configuration: the gateway's defaults, and the papers' parameters.
CONFIGS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "paper": {
        "blacklight_min_matches": 1,
        "nearest_neighbour_skip": 0,
        "boundary_attack_rate": 0.5,
        "boundary_false_alarm": 1e-6,
        "prada_duplicate_distance": None,
    },
}
ATTACKS: dict[str, tuple[dict[str, Any], str]] = {
    "square-linf": ({"epsilon": 0.1}, "scores"),
    "hsj-l2": ({"epsilon": 2.0}, "labels"),
}
SECRET = "gateway-detection-bench"
#: The settings whose defaults the "defaults" configuration stands for, written to the JSON.
DEFAULTS_SHOWN = {
    "blacklight_min_matches",
    "nearest_neighbour_k",
    "nearest_neighbour_skip",
    "boundary_attack_rate",
    "boundary_false_alarm",
    "prada_delta",
    "prada_duplicate_distance",
}


def settings(guards: dict[str, Any], database_url: str = "sqlite://") -> GatewaySettings:
    """The gateway's settings with ``guards`` over its defaults, rate limits out of the way,
    and scores for clients."""
    return GatewaySettings.model_validate(
        {
            "database_url": database_url,
            "guards": {
                "rate_limit_identity": "10000000/minute",
                "rate_limit_address": "10000000/minute",
                **guards,
            },
            "outputs": {"client": {"mode": "scores", "decimals": 4}},
            "secret": SECRET,
        }
    )


def calibrate(served: Served, guards: dict[str, Any]) -> dict[str, Any]:
    """``guards`` with the k-NN and boundary thresholds a pipeline calibrates from them, so
    the many fresh pipelines of a run need not calibrate again."""
    pipeline = Pipeline(settings(guards), served)
    knn = next(g for g in pipeline.guards if isinstance(g, NearestNeighbourGuard))
    boundary = next(g for g in pipeline.guards if isinstance(g, BoundaryGuard))
    return {
        **guards,
        "nearest_neighbour_threshold": knn.threshold,
        "boundary_near_margin": boundary.near_margin,
    }


@contextmanager
def live_gateway(
    served: Served, guards: dict[str, Any], keys: int
) -> Iterator[tuple[str, Store, list[str]]]:
    """A fresh gateway on 127.0.0.1 (uvicorn in a thread): its URL, audit store, client keys."""
    with tempfile.TemporaryDirectory() as tmp:
        cfg = settings(guards, f"sqlite:///{Path(tmp) / 'audit.db'}")
        store = Store(cfg.database_url)
        secrets = [store.create_key("client", f"attacker {i}")[1] for i in range(keys)]
        app = create_app(cfg, store=store, served=served)
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        try:
            while not server.started:
                if not thread.is_alive():
                    raise SystemExit("the gateway did not start")
                time.sleep(0.01)
            yield f"http://127.0.0.1:{port}/v1/predict", store, secrets
        finally:
            server.should_exit = True
            thread.join(timeout=10)
            store.close()


def first_flags(store: Store, queries: int) -> dict[str, int | None]:
    """Per detector (and ``any``): the 1-based query of its first flag among the attack's."""
    requests = [r for r in reversed(store.requests(1_000_000)) if r.path == "/v1/predict"]
    position = {r.id: i for i, r in enumerate(requests[:queries], start=1)}
    found: dict[str, int | None] = {g: None for g in ("any", *DETECTORS)}
    for flag in store.flags():
        at = position.get(flag.request_id)
        if at is None:
            continue
        for key in ("any", flag.guard):
            current = found.get(key)
            if current is None or at < current:
                found[key] = at
    return found


def attack_run(
    served: Served,
    guards: dict[str, Any],
    attack_id: str,
    keys: int,
    x: torch.Tensor,
    y: torch.Tensor,
    seed: int,
    max_queries: int,
) -> dict[str, Any]:
    """One attack on one digit against a fresh gateway; where it was first flagged."""
    options, access = ATTACKS[attack_id]
    with live_gateway(served, guards, keys) as (url, store, secrets):
        field = "scores" if access == "scores" else "label"
        attacker = RemoteModel(
            url,
            input_shape=tuple(x.shape[1:]),
            num_classes=10,
            access=access,
            response={"key": f"predictions.*.{field}"},
            api_keys=secrets,
            batch_size=1,
            retries=0,
        )
        with attacker:
            attack_cls: Any = get_attack(attack_id)
            attack = attack_cls(seed=seed, max_queries=max_queries, **options)
            result = attack(attacker, x, y)
        flags = first_flags(store, result.queries)
    first = flags["any"]
    success = bool(result.success[0])
    return {
        "attack": attack_id,
        "keys": keys,
        "seed": seed,
        "queries": result.queries,
        "success": success,
        "first_flag": first,
        "first_flag_per_guard": {g: flags[g] for g in DETECTORS},
        "evaded": success and first is None,
        "flagged_within_50": first is not None and first <= 50,
    }


def benign_stream(x: np.ndarray, seed: int, clients: int) -> list[tuple[int, bytes]]:
    """Every digit, sent 1-3 times in a row by one client, with fresh noise each time."""
    rng = np.random.default_rng(seed)
    stream = []
    for i in rng.permutation(len(x)):
        client = int(rng.integers(clients))
        for _ in range(int(rng.integers(1, 4))):
            noisy = np.clip(x[i] + rng.normal(0.0, 0.02, x[i].shape), 0.0, 1.0)
            body = json.dumps({"inputs": [noisy.astype(np.float32).tolist()]}).encode()
            stream.append((client, body))
    return stream


def benign(served: Served, guards: dict[str, Any], x: np.ndarray, total: int) -> dict[str, Any]:
    """False positives over ``total`` benign requests, in passes against fresh pipelines."""
    sent = flagged = passes = 0
    per_guard = dict.fromkeys(DETECTORS, 0)
    while sent < total:
        pipeline = Pipeline(settings(guards), served)
        for client, body in benign_stream(x, seed=passes, clients=8)[: total - sent]:
            out = pipeline.predict(f"client-{client}", "192.0.2.7", "client", body)
            if out.status != 200:
                raise SystemExit(f"benign request refused: {out.status} {out.error}")
            fired = {v.guard for v in out.verdicts if v.fired and v.guard in DETECTORS}
            flagged += bool(fired & set(QUERY_DETECTORS))
            for guard in fired:
                per_guard[guard] += 1
            sent += 1
        passes += 1
    return {
        "requests": sent,
        "passes": passes,
        "flagged": flagged,
        "rate": flagged / sent,
        "rate_upper_95": upper_95(flagged, sent),
        "per_guard": per_guard,
        "prada_rate": per_guard["prada"] / sent,
        "prada_rate_upper_95": upper_95(per_guard["prada"], sent),
    }


def upper_95(flagged: int, sent: int) -> float:
    """The one-sided 95% Clopper-Pearson upper bound of a rate of ``flagged`` in ``sent``."""
    return 1.0 if flagged >= sent else float(beta.ppf(0.95, flagged + 1, sent - flagged))


def _cell(values: list[int | None]) -> str:
    seen = [v for v in values if v is not None]
    if not seen:
        return "never"
    missed = len(values) - len(seen)
    text = f"{min(seen)}-{max(seen)}" if min(seen) != max(seen) else str(seen[0])
    return text + (f" ({missed} never)" if missed else "")


def table(result: dict[str, Any]) -> str:
    """The Markdown tables of one run."""
    lines = [
        "| config | attack | keys | first flag (query) | blacklight | k-NN | boundary "
        "| within 50 | evaded |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for config, figures in result["configs"].items():
        runs = figures["attacks"]
        for attack_id in ATTACKS:
            for keys in (1, 10):
                mine = [r for r in runs if r["attack"] == attack_id and r["keys"] == keys]
                per = [r["first_flag_per_guard"] for r in mine]
                lines.append(
                    f"| {config} | {attack_id} | {keys} | {_cell([r['first_flag'] for r in mine])} "
                    f"| {_cell([p['blacklight'] for p in per])} "
                    f"| {_cell([p['nearest-neighbour'] for p in per])} "
                    f"| {_cell([p['boundary'] for p in per])} "
                    f"| {sum(r['flagged_within_50'] for r in mine)}/{len(mine)} "
                    f"| {sum(r['evaded'] for r in mine)} |"
                )
    lines += [
        "",
        "| config | benign requests | flagged | rate | 95% upper | PRADA rate | 95% upper "
        "| per guard |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for config, figures in result["configs"].items():
        b = figures["benign"]
        guards = ", ".join(f"{g} {n}" for g, n in b["per_guard"].items())
        lines.append(
            f"| {config} | {b['requests']} | {b['flagged']} | {b['rate']:.4%} "
            f"| {b['rate_upper_95']:.4%} | {b['prada_rate']:.4%} "
            f"| {b['prada_rate_upper_95']:.4%} | {guards} |"
        )
    return "\n".join(lines)


def run(seeds: int, total: int, max_queries: int, zoo_cache: str | None) -> dict[str, Any]:
    """Every measurement, for each of `CONFIGS`."""
    served = load_served(GatewaySettings(zoo_cache=zoo_cache))
    entry = load_zoo_model("digits-cnn", cache_dir=zoo_cache)
    x_test, y_test = torch.from_numpy(entry.test.x), torch.from_numpy(entry.test.y)
    right = (served.model.labels(x_test) == y_test).nonzero().squeeze(1)[:seeds].tolist()
    pool = np.concatenate([entry.train.x, entry.test.x])
    configs: dict[str, Any] = {}
    for name, overrides in CONFIGS.items():
        started = time.perf_counter()
        guards = calibrate(served, overrides)
        runs = [
            attack_run(
                served,
                guards,
                attack_id,
                keys,
                x_test[i : i + 1],
                y_test[i : i + 1],
                s,
                max_queries,
            )
            for attack_id in ATTACKS
            for keys in (1, 10)
            for s, i in enumerate(right)
        ]
        configs[name] = {
            "guards": guards,
            "attacks": runs,
            "benign": benign(served, guards, pool, total),
        }
        configs[name]["seconds"] = time.perf_counter() - started
    return {
        "model": "zoo:digits-cnn",
        "date": date.today().isoformat(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "machine": platform.machine(),
        "digits": right,
        "max_queries": max_queries,
        "attacks": {a: o for a, (o, _) in ATTACKS.items()},
        "defaults": GatewaySettings().guards.model_dump(include=DEFAULTS_SHOWN),
        "configs": configs,
    }


def main() -> None:
    """Parse the arguments, measure, print the tables and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5, help="digits (and seeds) per attack")
    parser.add_argument("--benign", type=int, default=20_000, help="benign requests")
    parser.add_argument("--max-queries", type=int, default=100, help="queries per attack run")
    parser.add_argument("--zoo-cache", default=None, help="where the embedded models are kept")
    parser.add_argument("--out", type=Path, default=RESULTS / "gateway_detection.json")
    args = parser.parse_args()
    result = run(args.seeds, args.benign, args.max_queries, args.zoo_cache)
    print(table(result))
    args.out.parent.mkdir(exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
