"""PRADA in the gateway: an extraction stream is flagged, recorded, and blocked when configured."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from fastapi.testclient import TestClient
from sqlalchemy import text

from bastion.data.zoo import ZooEntry
from bastion.gateway import Store
from bastion.models import Model

Build = Callable[..., tuple[TestClient, Store, dict[str, str]]]


def jacobian_augmentation(entry: ZooEntry, model: Model, rounds: int = 4) -> torch.Tensor:
    """Papernot et al.'s (2017) augmentation from 10 held-out seeds, lambda = 0.1, with a
    softmax-regression substitute (the same stream as in tests/unit/defenses)."""
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    known = torch.from_numpy(entry.test.x[rng.choice(len(entry.test.x), 10, False)]).float()
    labels = model.labels(known)
    queries = [known]
    for _ in range(rounds):
        substitute = torch.nn.Linear(known[0].numel(), model.num_classes)
        optimiser = torch.optim.Adam(substitute.parameters(), lr=0.1)
        for _ in range(50):
            optimiser.zero_grad()
            loss = torch.nn.functional.cross_entropy(substitute(known.flatten(1)), labels)
            loss.backward()
            optimiser.step()
        x = known.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(substitute(x.flatten(1)).gather(1, labels[:, None]).sum(), x)
        new = (known + 0.1 * grad.sign()).clamp(0, 1).detach()
        queries.append(new)
        known, labels = torch.cat([known, new]), torch.cat([labels, model.labels(new)])
    return torch.cat(queries)


def test_extraction_stream_is_blocked_by_prada(make_client: Build, digits_entry: ZooEntry) -> None:
    client, store, keys = make_client(
        blacklight=False,
        nearest_neighbour=False,
        boundary=False,
        prada_action="block",
        prada_delta=0.95,
    )
    model = client.app.state.pipeline.model  # type: ignore[attr-defined]
    stream = jacobian_augmentation(digits_entry, model)
    headers = {"Authorization": f"Bearer {keys['client']}"}
    statuses = []
    # the whole stream (160 queries): the re-send rule leaves its exact repeats out of PRADA's
    # distances, so the first test runs at query 130 here (query 110 with the paper's rule)
    for start in range(0, len(stream), 10):
        inputs = stream[start : start + 10].tolist()
        statuses.append(client.post("/v1/predict", headers=headers, json={"inputs": inputs}))
    codes = [r.status_code for r in statuses]
    assert 403 in codes and codes[: codes.index(403)] == [200] * codes.index(403)
    assert "answer withheld" in statuses[codes.index(403)].json()["error"]["message"]
    with store.engine.connect() as conn:
        flags = conn.execute(text("SELECT guard, action, evidence FROM flags")).all()
    assert flags and {f[:2] for f in flags} == {("prada", "block")}
    assert '"w"' in flags[0][2]
    # Another identity sending natural digits is not affected.
    admin = {"Authorization": f"Bearer {keys['admin']}"}
    natural = digits_entry.test.x[:20].tolist()
    assert client.post("/v1/predict", headers=admin, json={"inputs": natural}).status_code == 200
