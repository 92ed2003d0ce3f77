import pytest
import torch

from bastion.assessment import EvasionPlan, evasion_findings, run_evasion_sweep, severity_for_drop
from bastion.core import Goal, Norm, Severity, ValidationError
from bastion.models import TorchModel


def test_severity_thresholds() -> None:
    assert severity_for_drop(0.95) is Severity.CRITICAL
    assert severity_for_drop(0.6) is Severity.HIGH
    assert severity_for_drop(0.3) is Severity.MEDIUM
    assert severity_for_drop(0.07) is Severity.LOW
    assert severity_for_drop(0.0) is Severity.INFO


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"attacks": ()}, "attacks"),
        ({"attacks": ("nope",)}, "attack"),
        ({"epsilons": {"linf": ()}}, "epsilons"),
        ({"epsilons": {"linf": (-0.1,)}}, "epsilons"),
        ({"epsilons": {"l3": (0.1,)}}, "norm"),
        ({"pgd_steps": 0}, "pgd_steps"),
    ],
)
def test_plan_validation(kwargs: dict[str, object], fragment: str) -> None:
    with pytest.raises(ValidationError, match=fragment):
        EvasionPlan(**kwargs)  # type: ignore[arg-type]


def test_sweep_measures_each_budget_and_reports_progress(
    digits_model: TorchModel, digits_batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x, y = digits_batch
    plan = EvasionPlan(
        attacks=("fgsm-linf", "pgd-linf"),
        epsilons={Norm.LINF: (0.05, 0.2)},
        pgd_steps=10,
        batch_size=40,
    )
    calls: list[tuple[str, int, int]] = []
    points, skipped = run_evasion_sweep(
        digits_model, x, y, plan, progress=lambda *a: calls.append(a)
    )
    assert skipped == []
    assert [(p.attack, p.epsilon) for p in points] == [
        ("fgsm-linf", 0.05),
        ("fgsm-linf", 0.2),
        ("pgd-linf", 0.05),
        ("pgd-linf", 0.2),
    ]
    assert calls[-1] == ("pgd-linf", 128, 128)  # 2 budgets x 64 samples, in batches of 40
    pgd_small, pgd_large = points[2], points[3]
    assert pgd_large.robust_accuracy < pgd_small.robust_accuracy
    assert pgd_small.queries == 64 * 10

    findings = evasion_findings(points, plan)
    assert {f.id for f in findings} == {"evasion.fgsm-linf", "evasion.pgd-linf"}
    pgd = next(f for f in findings if f.id == "evasion.pgd-linf")
    assert pgd.goal is Goal.EVASION and pgd.leaf == "evasion.white-box"
    assert pgd.metrics["epsilon"] == 0.05  # the swept budget closest to the 0.1 reference
    assert pgd.severity is severity_for_drop(pgd.metrics["relative_drop"])


def test_sweep_skips_attacks_the_model_cannot_serve(
    digits_model: TorchModel, digits_batch: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x, y = digits_batch
    points, skipped = run_evasion_sweep(digits_model.restricted("scores"), x, y, EvasionPlan())
    assert points == [] and skipped == ["fgsm-linf", "pgd-linf", "pgd-l2"]


def test_assess_with_the_standard_evaluation_adds_its_finding(
    digits_entry: object, digits_model: TorchModel
) -> None:
    from bastion.assessment import assess

    data = digits_entry.test.take(8)  # type: ignore[attr-defined]
    plan = EvasionPlan(attacks=("fgsm-linf",), epsilons={Norm.LINF: (0.1,)})
    quick = {"apgd-t-linf": {"steps": 20}, "square-linf": {"max_queries": 100}}
    result = assess(digits_model, data, plan=plan, standard=("linf",), standard_overrides=quick)
    ids = {f.id for f in result.findings}
    assert {"evasion.fgsm-linf", "evasion.standard-linf"} <= ids
    standard = next(f for f in result.findings if f.id == "evasion.standard-linf")
    ran = [s["attack"] for s in standard.evidence["stages"]]
    assert ran[:2] == ["apgd-ce-linf", "apgd-t-linf"] and ran[-1] == "square-linf"
    fgsm = next(f for f in result.findings if f.id == "evasion.fgsm-linf")
    # the ensemble is at least as strong as FGSM at the same budget
    assert standard.metrics["robust_accuracy"] <= fgsm.metrics["robust_accuracy"]
