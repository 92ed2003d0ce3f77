import json
from pathlib import Path

import pytest

from bastion.core import AssessmentResult, Finding, LoadError, SweepPoint
from bastion.reports import accuracy_vs_epsilon_png, render_html, write_report


def _result(title: str = "PGD lowers accuracy") -> AssessmentResult:
    points = [
        SweepPoint(
            attack="pgd-linf",
            norm="linf",  # type: ignore[arg-type]
            epsilon=e,
            samples=10,
            clean_accuracy=0.9,
            robust_accuracy=r,
            success_rate=1 - r,
            mean_norm=e,
            queries=100,
            seconds=0.1,
        )
        for e, r in ((0.05, 0.6), (0.1, 0.2))
    ]
    finding = Finding(
        id="evasion.pgd-linf",
        title=title,
        goal="evasion",  # type: ignore[arg-type]
        leaf="evasion.white-box",
        severity="high",  # type: ignore[arg-type]
        metrics={"robust_accuracy": 0.2},
    )
    return AssessmentResult(
        target={"model": "zoo:digits-cnn", "data": "digits"}, sweep=points, findings=[finding]
    )


def test_plot_is_a_png() -> None:
    assert accuracy_vs_epsilon_png(_result().sweep).startswith(b"\x89PNG\r\n\x1a\n")


def test_html_is_self_contained_and_shows_the_findings() -> None:
    html = render_html(_result())
    assert "PGD lowers accuracy" in html
    assert 'src="data:image/png;base64,' in html
    assert "http://" not in html and "https://" not in html  # nothing loaded from outside
    assert "evasion.white-box" in html


def test_html_escapes_hostile_text() -> None:
    html = render_html(_result(title="<script>alert(1)</script>"))
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;" in html


def test_write_report_writes_both_files_that_round_trip(tmp_path: Path) -> None:
    paths = write_report(_result(), tmp_path / "out")
    data = json.loads(paths["json"].read_text())
    assert AssessmentResult.from_dict(data).findings[0].id == "evasion.pgd-linf"
    assert paths["html"].read_text().startswith("<!doctype html>")


def test_write_report_refuses_a_file_as_directory(tmp_path: Path) -> None:
    clash = tmp_path / "report"
    clash.write_text("x")
    with pytest.raises(LoadError, match="directory"):
        write_report(_result(), clash)
