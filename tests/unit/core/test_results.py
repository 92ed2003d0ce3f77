import json

import numpy as np
import pytest
import torch

from bastion.core import (
    AssessmentResult,
    AttackResult,
    Finding,
    Severity,
    SweepPoint,
    ThreatModel,
    ValidationError,
)


def _finding(**overrides: object) -> Finding:
    fields: dict[str, object] = {
        "id": "evasion.pgd-linf",
        "title": "PGD works",
        "goal": "evasion",
        "leaf": "evasion.white-box",
        "severity": "high",
        "metrics": {"robust_accuracy": 0.1},
        "evidence": {"curve": [1, 2]},
    }
    fields.update(overrides)
    return Finding(**fields)  # type: ignore[arg-type]


def test_finding_round_trips_through_json() -> None:
    finding = _finding()
    again = Finding.from_dict(json.loads(json.dumps(finding.to_dict())))
    assert again == finding
    assert again.severity is Severity.HIGH


def test_finding_is_immutable_including_its_mappings() -> None:
    finding = _finding()
    with pytest.raises(TypeError):
        finding.metrics["robust_accuracy"] = 1.0  # type: ignore[index]


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"id": "Has Spaces"}, "id"),
        ({"goal": "theft"}, "goal"),
        ({"severity": "urgent"}, "severity"),
        ({"metrics": {"x": float("nan")}}, "metrics"),
        ({"metrics": {"x": "high"}}, "metrics"),
        ({"evidence": {"x": object()}}, "JSON"),
        ({"title": "  "}, "title"),
    ],
)
def test_finding_rejects_bad_fields(overrides: dict[str, object], fragment: str) -> None:
    with pytest.raises(ValidationError, match=fragment):
        _finding(**overrides)


def test_finding_from_dict_names_missing_keys() -> None:
    with pytest.raises(ValidationError, match="goal"):
        Finding.from_dict({"id": "a", "title": "t", "leaf": "l", "severity": "low"})


@pytest.mark.parametrize("array", [np.array, torch.tensor])
def test_attack_result_rates_work_on_numpy_and_torch(array: object) -> None:
    success = array([True, False, True, True])  # type: ignore[operator]
    clean = array([True, True, False, True])  # type: ignore[operator]
    result = AttackResult(
        attack="pgd-linf",
        threat_model=ThreatModel(),
        x_adv=None,
        success=success,
        clean_correct=clean,
        norms=None,
        queries=10,
        seconds=0.5,
    )
    assert result.success_rate == 0.75
    assert result.clean_accuracy == 0.75
    assert result.robust_accuracy == 0.25  # only sample 1 stays right
    assert result.summary()["samples"] == 4


def test_assessment_result_round_trip_and_worst_severity() -> None:
    point = SweepPoint(
        attack="pgd-linf",
        norm="linf",  # type: ignore[arg-type]
        epsilon=0.1,
        samples=10,
        clean_accuracy=1.0,
        robust_accuracy=0.2,
        success_rate=0.8,
        mean_norm=0.09,
        queries=400,
        seconds=0.1,
    )
    result = AssessmentResult(
        target={"model": "m"},
        sweep=[point],
        findings=[_finding(severity="low"), _finding(id="b", severity="critical")],
    )
    assert result.worst_severity is Severity.CRITICAL
    again = AssessmentResult.from_dict(json.loads(json.dumps(result.to_dict())))
    assert again.sweep == (point,)
    assert [f.id for f in again.findings] == ["evasion.pgd-linf", "b"]
    with pytest.raises(ValidationError, match="robust_accuracy"):
        SweepPoint(**{**point.to_dict(), "robust_accuracy": 1.5})
