"""Sign-OPT spends its whole per-sample budget, without ever exceeding it."""

from __future__ import annotations

import pytest
import torch

from bastion.attacks.evasion import L2SignOPTAttack, _blackbox, signopt
from bastion.models import TorchModel

Batch = tuple[torch.Tensor, torch.Tensor]


@pytest.mark.parametrize(("max_queries", "k"), [(400, 50), (333, 40)])
def test_sign_opt_uses_the_queries_a_full_estimate_leaves(
    monkeypatch: pytest.MonkeyPatch,
    digits_model: TorchModel,
    digits_batch: Batch,
    max_queries: int,
    k: int,
) -> None:
    trackers: list[_blackbox.QueryTracker] = []

    class Spy(_blackbox.QueryTracker):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, **kwargs)  # type: ignore[arg-type]
            trackers.append(self)

    monkeypatch.setattr(signopt, "QueryTracker", Spy)
    x, y = digits_batch
    keep = digits_model.labels(x[:8]) == y[:8]
    x, y = x[:8][keep], y[:8][keep]
    result = L2SignOPTAttack(epsilon=100.0, max_queries=max_queries, k=k)(digits_model, x, y)
    used = trackers[0].used
    assert bool((used <= max_queries).all())
    # every sample ends with at most one query unspent (none converges this early)
    assert bool((used >= max_queries - 1).all()), used.tolist()
    assert result.queries == int(used.sum())
    assert bool(result.success.all())


def test_small_final_estimate_is_the_mean_over_its_own_directions() -> None:
    # With a model-free oracle that says "adversarial" for every probe, each sign is -1, so
    # the estimate is minus the mean of the sample's own unit directions: its norm is 1 for
    # one direction and below 1 for more, whatever k is.
    class AllHit:
        def __init__(self) -> None:
            self.calls: list[tuple[int, list[int]]] = []

        def many(
            self, cand: torch.Tensor, owner: torch.Tensor, idx: torch.Tensor, per: torch.Tensor
        ) -> torch.Tensor:
            self.calls.append((cand.shape[0], torch.as_tensor(per).tolist()))
            return torch.ones(cand.shape[0], dtype=torch.bool)

    oracle = AllHit()
    attack = L2SignOPTAttack(epsilon=1.0, k=200)
    x = torch.rand(3, 1, 4, 4)
    theta = torch.nn.functional.normalize(torch.randn(3, 16), dim=1).view(3, 1, 4, 4)
    size = torch.tensor([1, 7, 200])
    grad = attack._sign_gradient(
        x,
        theta,
        torch.ones(3),
        torch.full((3,), 1e-3),
        size,
        torch.arange(3),
        oracle,  # type: ignore[arg-type]
        torch.Generator().manual_seed(0),
        (0.0, 1.0),
    )
    assert sum(rows for rows, _ in oracle.calls) == 208  # one query per sign, no more
    assert sum(sum(per) for _, per in oracle.calls) == 208
    norms = grad.flatten(1).norm(dim=1)
    assert abs(float(norms[0]) - 1.0) < 1e-5
    assert float(norms[1]) < 1.0 and float(norms[2]) < 0.5
