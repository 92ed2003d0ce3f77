import dataclasses

import pytest

from bastion.core import Access, Goal, Norm, Severity, ThreatModel, ValidationError


def test_threat_model_parses_strings_and_is_frozen() -> None:
    tm = ThreatModel(norm="l2", epsilon=0.5, bounds=(0, 255), access="scores")  # type: ignore[arg-type]
    assert tm.norm is Norm.L2 and tm.access is Access.SCORES
    assert tm.bounds == (0.0, 255.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        tm.epsilon = 1.0  # type: ignore[misc]
    assert tm.to_dict() == {
        "norm": "l2",
        "epsilon": 0.5,
        "bounds": [0.0, 255.0],
        "targeted": False,
        "access": "scores",
    }


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"norm": "l3"}, "norm"),
        ({"epsilon": -0.1}, "epsilon"),
        ({"epsilon": float("nan")}, "epsilon"),
        ({"bounds": (1, 0)}, "low < high"),
        ({"bounds": (0,)}, "pair"),
        ({"access": "weights"}, "access"),
        ({"targeted": "yes"}, "targeted"),
        ({"norm": "l0", "epsilon": 1.5}, "whole number"),
    ],
)
def test_threat_model_rejects_bad_fields(kwargs: dict[str, object], fragment: str) -> None:
    with pytest.raises(ValidationError, match=fragment):
        ThreatModel(**kwargs)  # type: ignore[arg-type]


def test_access_is_ordered() -> None:
    assert Access.GRADIENTS.grants("labels")
    assert Access.SCORES.grants(Access.LABELS)
    assert not Access.LABELS.grants("scores")
    assert not Access.SCORES.grants("gradients")


def test_goal_and_severity_parse() -> None:
    assert Goal.parse("espionage") is Goal.ESPIONAGE
    assert Severity.parse("high").rank > Severity.parse("low").rank
    with pytest.raises(ValidationError, match="goal"):
        Goal.parse("theft")
