"""The CLI end to end: real arguments in, exit codes and one-line errors out."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bastion.cli import main

FAST = ["--max-samples", "40", "--steps", "5", "--epsilons", "0.05,0.2", "--l2-epsilons", "1"]


def test_help_lists_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "assess" in out and "version" in out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    from bastion import __version__

    assert main(["version"]) == 0
    assert __version__ in capsys.readouterr().out


def test_assess_default_writes_the_report(
    tmp_path: Path, zoo_cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report"
    code = main(["assess", "--out", str(out), "--cache-dir", str(zoo_cache), *FAST])
    assert code == 0
    data = json.loads((out / "findings.json").read_text())
    assert data["target"]["model"] == "zoo:digits-cnn"
    assert {p["attack"] for p in data["sweep"]} == {"fgsm-linf", "pgd-linf", "pgd-l2"}
    assert {f["id"] for f in data["findings"]} == {
        "evasion.fgsm-linf",
        "evasion.pgd-linf",
        "evasion.pgd-l2",
    }
    html = (out / "index.html").read_text()
    assert "data:image/png;base64," in html
    printed = capsys.readouterr().out
    assert "Accuracy under attack" in printed and "index.html" in printed


def test_fail_on_exits_1_when_a_finding_is_that_severe(tmp_path: Path, zoo_cache: Path) -> None:
    args = ["assess", "--out", str(tmp_path), "--cache-dir", str(zoo_cache), *FAST]
    assert main([*args, "--attacks", "pgd-linf", "--fail-on", "low"]) == 1


def _one_line_error(capsys: pytest.CaptureFixture[str], fragment: str) -> None:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    assert err.startswith("error:")
    assert fragment in err


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--model", "missing.pt"], "no such model file: missing.pt"),
        (["--epsilons", "a,b"], "--epsilons"),
        (["--attacks", "cw-l2"], "attack"),
        (["--fail-on", "urgent"], "--fail-on"),
        (["--model", "zoo:nope"], "zoo:NAME"),
        (["--bounds", "0"], "--bounds"),
    ],
)
def test_bad_arguments_print_one_line_and_exit_2(
    args: list[str], fragment: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["assess", "--out", str(tmp_path), *args]) == 2
    _one_line_error(capsys, fragment)


def test_bad_csv_prints_one_line_and_exits_2(
    tmp_path: Path, zoo_cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b,label\n1,oops,0\n2,3,1\n")
    code = main(
        ["assess", "--model", "zoo:cancer-mlp", "--data", str(bad), "--cache-dir", str(zoo_cache)]
    )
    assert code == 2
    _one_line_error(capsys, "bad.csv")


def test_missing_data_file_exits_2(
    tmp_path: Path, zoo_cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["assess", "--data", str(tmp_path / "nope.npz"), "--cache-dir", str(zoo_cache)])
    assert code == 2
    _one_line_error(capsys, "nope.npz")


def test_console_script_runs_as_a_process(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "bastion", "assess", "--model", "missing.pt"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert "no such model file" in out.stderr
