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
        (["--attacks", "no-such-attack"], "attack"),
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


def test_torch_factory_with_safetensors_weights_end_to_end(
    tmp_path: Path, zoo_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--model package.module:fn --weights file.safetensors, on an embedded data set."""
    from safetensors.torch import save_file

    from bastion.data import load_zoo_model

    entry = load_zoo_model("digits-cnn", cache_dir=zoo_cache)
    weights = tmp_path / "cnn.safetensors"
    save_file(entry.model.state_dict(), str(weights))
    (tmp_path / "mynets.py").write_text(
        "from bastion.data import DigitsCNN\n\ndef build():\n    return DigitsCNN()\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    out = tmp_path / "out"
    code = main(
        [
            "assess",
            "--model",
            "mynets:build",
            "--weights",
            str(weights),
            "--data",
            "digits",
            "--out",
            str(out),
            *FAST,
            "--attacks",
            "pgd-linf",
        ]
    )
    assert code == 0
    data = json.loads((out / "findings.json").read_text())
    assert data["target"]["model"] == "mynets:build"
    assert data["sweep"][0]["clean_accuracy"] > 0.9  # the weights really were loaded


def test_pickled_model_needs_trust_pickle(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import pickle

    from sklearn.linear_model import LogisticRegression

    from bastion.data import load_embedded

    data = load_embedded("breast-cancer")
    path = tmp_path / "clf.pkl"
    path.write_bytes(pickle.dumps(LogisticRegression(max_iter=500).fit(data.x, data.y)))
    args = ["assess", "--model", str(path), "--data", "breast-cancer", "--out", str(tmp_path / "o")]
    assert main(args) == 2
    _one_line_error(capsys, "--trust-pickle")
    # With consent it loads; a scores-only model gets no gradient attack, and says so.
    assert main([*args, "--trust-pickle"]) == 0
    assert "Skipped" in capsys.readouterr().out


def test_pre_commit_hook_runs_a_real_command(capsys: pytest.CaptureFixture[str]) -> None:
    hook = (Path(__file__).resolve().parents[3] / ".pre-commit-hooks.yaml").read_text()
    assert "id: bastion-scan" in hook
    entry = next(line.split(":", 1)[1].split() for line in hook.splitlines() if "entry:" in line)
    assert entry[0] == "bastion"
    assert main([*entry[1:], "--help"]) == 0
    assert "Usage: bastion scan" in capsys.readouterr().out
