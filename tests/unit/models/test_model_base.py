"""BaseModel's rules (validation, batching, charging, access) and restricted views."""

from __future__ import annotations

import pytest
import torch

from bastion.core.errors import AccessError, QueryBudgetExceeded, ValidationError
from bastion.core.threat_model import Access
from bastion.models import BaseModel, Model, QueryCounter, RestrictedModel


class Sum(BaseModel):
    """Scores [-s, s] for s = sum of the features; records the chunk sizes it saw."""

    access = Access.SCORES

    def __init__(self, **kwargs: object) -> None:
        super().__init__(input_shape=(2,), num_classes=2, **kwargs)  # type: ignore[arg-type]
        self.chunks: list[int] = []

    def _scores_batch(self, x: torch.Tensor) -> torch.Tensor:
        self.chunks.append(x.shape[0])
        s = x.sum(dim=1)
        return torch.stack([-s, s], dim=1)


def test_labels_and_scores_are_chunked_and_charged() -> None:
    model = Sum(batch_size=3)
    x = torch.tensor([[1.0, 0.0]] * 4 + [[-1.0, 0.0]] * 3)
    assert model.labels(x).tolist() == [1] * 4 + [0] * 3
    assert model.chunks == [3, 3, 1]
    assert model.scores(x).shape == (7, 2)
    assert model.counter.count == 14


def test_a_call_over_budget_charges_nothing_even_across_chunks() -> None:
    # regression: charging chunk by chunk answered 2 chunks, then failed with 4 queries spent
    model = Sum(batch_size=2, budget=5)
    with pytest.raises(QueryBudgetExceeded):
        model.labels(torch.zeros(6, 2))
    assert model.counter.count == 0
    assert model.chunks == []
    model.labels(torch.zeros(5, 2))
    assert model.counter.count == 5


def test_invalid_input_charges_nothing() -> None:
    model = Sum()
    with pytest.raises(ValidationError):
        model.labels(torch.zeros(3, 5))
    assert model.counter.count == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"batch_size": 0}, "batch_size"),
        ({"bounds": (1.0, 0.0)}, "low < high"),
        ({"bounds": (0.0,)}, "pair"),
        ({"budget": 1, "counter": QueryCounter()}, "either budget or counter"),
    ],
)
def test_init_validation(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Sum(**kwargs)


def test_logits_refused_without_gradients() -> None:
    with pytest.raises(AccessError, match="'gradients' access"):
        Sum().logits(torch.zeros(1, 2))


def test_protocol_and_repr() -> None:
    model = Sum()
    assert isinstance(model, Model)
    assert isinstance(model.restricted("labels"), Model)
    assert "access='scores'" in repr(model)
    assert "access='labels'" in repr(model.restricted("labels"))


def test_restricted_view_shares_counter_and_hides_scores() -> None:
    counter = QueryCounter(budget=10)
    model = Sum(counter=counter)
    view = model.restricted(Access.LABELS)
    assert isinstance(view, RestrictedModel)
    assert view.counter is counter
    assert (view.num_classes, view.input_shape, view.bounds) == (2, (2,), (0.0, 1.0))
    view.labels(torch.zeros(4, 2))
    assert counter.count == 4
    with pytest.raises(AccessError, match="grants only 'labels'"):
        view.scores(torch.zeros(1, 2))
    with pytest.raises(AccessError):
        view.logits(torch.zeros(1, 2))
    assert counter.count == 4


def test_widening_is_refused() -> None:
    model = Sum()
    with pytest.raises(AccessError, match="Cannot widen"):
        model.restricted("gradients")
    with pytest.raises(AccessError, match="Cannot widen"):
        model.restricted("labels").restricted("scores")
    assert model.restricted("scores").restricted("labels").access is Access.LABELS
    with pytest.raises(ValidationError):
        model.restricted("everything")
