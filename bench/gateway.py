"""Latency the gateway adds: bastion's guarded endpoint against a bare FastAPI endpoint.

Run ``python bench/gateway.py [--requests N] [--out FILE]``. In one process, over the same
TorchModel adapter of ``zoo:cancer-mlp`` (a tabular model, 30 features), it sends the same request
stream, interleaved, to

* a bare FastAPI app: parse the JSON batch, query the model, return labels;
* the bastion gateway with every guard on (auth, input validation, both rate limits,
  Blacklight, nearest neighbours, boundary CUSUM, PRADA, output hardening) and the SQLite
  audit log;

and, without HTTP, times the guard pipeline against a bare model call. Both apps are called
in-process through the same ASGI test client, so the client's own cost cancels out in the
difference. Torch runs on ``--threads`` intra-op threads (default 1, as a latency-bound
server with one small batch per request would be configured; both paths alike). Writes
``bench/results/gateway.json`` (or ``--out``) and prints a Markdown table, with the added
p99 of each guard measured alone.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import torch
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

from bastion.data import load_zoo_model
from bastion.defenses.guards import Query
from bastion.gateway import GatewaySettings, GuardSettings, Store, create_app, load_served
from bastion.gateway.pipeline import Pipeline

RESULTS = Path(__file__).with_name("results")
MODEL = "zoo:cancer-mlp"


def _percentiles(samples: list[float]) -> dict[str, float]:
    ms = np.asarray(samples) * 1000
    return {
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "mean_ms": float(ms.mean()),
    }


def _timed(times: dict[str, list[float]], name: str, call: Callable[..., Any], *args: Any) -> Any:
    start = time.perf_counter()
    result = call(*args)
    times.setdefault(name, []).append(time.perf_counter() - start)
    return result


def per_guard(pipeline: Pipeline, bodies: list[bytes]) -> dict[str, dict[str, float]]:
    """Each step of the pipeline timed alone over ``bodies``, in the pipeline's order."""
    times: dict[str, list[float]] = {}
    for body in bodies:
        _, x = _timed(times, "input", pipeline.input_guard.inspect, body)
        query = Query(identity="bench", address="127.0.0.1", x=x)
        for guard in (*pipeline.rate_guards, *pipeline.input_detectors):
            _timed(times, guard.name, guard.check, query)
        scores = _timed(times, "model", pipeline.model.scores, x)
        answered = Query(identity="bench", address="127.0.0.1", x=x, scores=scores)
        for guard in pipeline.answer_detectors:
            _timed(times, guard.name, guard.check, answered)
        _timed(times, "output", pipeline.outputs["client"].render, scores)
    return {name: _percentiles(t) for name, t in times.items()}


def bare_app(model: Any) -> FastAPI:
    """The baseline: the same model behind a FastAPI endpoint with no guard at all."""
    app = FastAPI()

    @app.post("/v1/predict")
    async def predict(request: Request) -> dict[str, Any]:
        body = await request.json()
        x = torch.as_tensor(np.asarray(body["inputs"], dtype=np.float32))
        labels = model.scores(x).argmax(dim=1).tolist()
        return {"predictions": [{"label": int(v)} for v in labels]}

    return app


def run(requests: int) -> dict[str, Any]:
    """Time ``requests`` requests to each app and to the pipeline; return the figures."""
    settings = GatewaySettings(
        model=MODEL,
        database_url="sqlite://",  # replaced below by a file in a temporary folder
        guards=GuardSettings(
            rate_limit_identity="1000000/minute", rate_limit_address="1000000/minute"
        ),
    )
    entry = load_zoo_model("cancer-mlp")
    rows = entry.test.x
    gen = np.random.default_rng(0)
    stream = [
        np.clip(rows[i % len(rows)] + gen.normal(0, 0.01, rows.shape[1]), 0, 1)[None].tolist()
        for i in range(requests)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        settings = settings.model_copy(update={"database_url": f"sqlite:///{tmp}/audit.db"})
        served = load_served(settings)
        store = Store(settings.database_url)
        key = store.create_key("client", "bench")[1]
        guarded = TestClient(create_app(settings, store=store, served=served))
        bare = TestClient(bare_app(served.model))
        auth = {"Authorization": f"Bearer {key}"}
        times: dict[str, list[float]] = {"bare": [], "gateway": []}
        for inputs in stream[:50]:  # warm-up
            bare.post("/v1/predict", json={"inputs": inputs})
            guarded.post("/v1/predict", json={"inputs": inputs}, headers=auth)
        for i, inputs in enumerate(stream):
            order = [("bare", bare, {}), ("gateway", guarded, auth)]
            for name, client, headers in order if i % 2 == 0 else order[::-1]:
                start = time.perf_counter()
                answer = client.post("/v1/predict", json={"inputs": inputs}, headers=headers)
                times[name].append(time.perf_counter() - start)
                if answer.status_code != 200:
                    raise RuntimeError(f"{name} answered {answer.status_code}: {answer.text}")
        guarded.close()
        bare.close()
        store.close()

        # the guards alone, without HTTP, auth or the audit write
        pipeline = Pipeline(settings, served)
        direct: dict[str, list[float]] = {"model": [], "pipeline": []}
        for inputs in stream:
            body = json.dumps({"inputs": inputs}).encode()
            start = time.perf_counter()
            served.model.scores(torch.as_tensor(np.asarray(inputs, dtype=np.float32)))
            direct["model"].append(time.perf_counter() - start)
            start = time.perf_counter()
            pipeline.predict("bench", "127.0.0.1", "client", body)
            direct["pipeline"].append(time.perf_counter() - start)
        steps = per_guard(
            Pipeline(settings, served), [json.dumps({"inputs": i}).encode() for i in stream]
        )

    figures = {name: _percentiles(t) for name, t in {**times, **direct}.items()}
    added = [g - b for g, b in zip(times["gateway"], times["bare"], strict=True)]
    guards_added = [p - m for p, m in zip(direct["pipeline"], direct["model"], strict=True)]
    return {
        "model": MODEL,
        "requests": requests,
        "date": date.today().isoformat(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "machine": platform.machine(),
        "torch_threads": torch.get_num_threads(),
        "figures": figures,
        "added_http_p99_ms": figures["gateway"]["p99_ms"] - figures["bare"]["p99_ms"],
        "added_http_paired": _percentiles(added),
        "added_guards_p99_ms": figures["pipeline"]["p99_ms"] - figures["model"]["p99_ms"],
        "added_guards_paired": _percentiles(guards_added),
        "median_bare_ms": statistics.median(times["bare"]) * 1000,
        "steps": steps,
    }


def main() -> None:
    """Parse arguments, run, write the JSON and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument(
        "--out", type=Path, default=RESULTS / "gateway.json", help="where the JSON goes"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    result = run(args.requests)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{MODEL}, {args.requests} requests each, one process\n")
    print("| path | p50 ms | p99 ms |\n|---|---|---|")
    for name, f in result["figures"].items():
        print(f"| {name} | {f['p50_ms']:.3f} | {f['p99_ms']:.3f} |")
    print(
        f"\nadded p99: whole gateway {result['added_http_p99_ms']:.3f} ms, "
        f"guards alone {result['added_guards_p99_ms']:.3f} ms"
    )
    print("\n| step alone | p50 ms | p99 ms |\n|---|---|---|")
    for name, f in result["steps"].items():
        print(f"| {name} | {f['p50_ms']:.3f} | {f['p99_ms']:.3f} |")


if __name__ == "__main__":
    main()
