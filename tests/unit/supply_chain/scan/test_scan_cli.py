"""``bastion scan``: exit codes, the three output formats, usage errors."""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from bastion.cli.scan import register
from bastion.core.errors import ConfigError, LoadError
from bastion.supply_chain.scan import render_table, scan_paths


@pytest.fixture
def app() -> typer.Typer:
    app = typer.Typer()
    register(app)

    @app.command()
    def other() -> None:  # a second command, so "scan" stays a sub-command as in bastion
        """Unused."""

    return app


@pytest.fixture
def files(tmp_path: Path, evil_pickle: Callable[[int], bytes]) -> tuple[Path, Path]:
    clean = tmp_path / "clean.pkl"
    clean.write_bytes(pickle.dumps({"w": [1.0]}))
    evil = tmp_path / "evil.bin"
    evil.write_bytes(evil_pickle(4))
    return clean, evil


def test_exit_0_when_clean_and_1_when_anything_is_found(
    app: typer.Typer, files: tuple[Path, Path]
) -> None:
    clean, evil = files
    runner = CliRunner()
    ok = runner.invoke(app, ["scan", str(clean)])
    assert ok.exit_code == 0, ok.output
    assert "1 files scanned: 1 clean" in ok.output
    bad = runner.invoke(app, ["scan", str(clean), str(evil)])
    assert bad.exit_code == 1
    assert "dangerous" in bad.output and "posix.system" in bad.output


def test_json_output(app: typer.Typer, files: tuple[Path, Path]) -> None:
    result = CliRunner().invoke(app, ["scan", *map(str, files), "--format", "json"])
    body = json.loads(result.output)
    assert result.exit_code == 1
    assert body["files"] == 2 and body["issues"] >= 1
    verdicts = {Path(r["path"]).name: r["verdict"] for r in body["reports"]}
    assert verdicts == {"clean.pkl": "clean", "evil.bin": "dangerous"}


def test_sarif_output_has_the_2_1_0_structure(
    app: typer.Typer, files: tuple[Path, Path], tmp_path: Path
) -> None:
    out = tmp_path / "scan.sarif"
    result = CliRunner().invoke(
        app, ["scan", str(files[1]), "--format", "sarif", "--output", str(out)]
    )
    assert result.exit_code == 1
    log = json.loads(out.read_text())
    assert log["version"] == "2.1.0" and "sarif-2.1.0" in log["$schema"]
    (run,) = log["runs"]
    rules = [r["id"] for r in run["tool"]["driver"]["rules"]]
    for res in run["results"]:
        assert res["ruleId"] in rules and rules[res["ruleIndex"]] == res["ruleId"]
        assert res["level"] in ("error", "warning", "note")
        assert res["message"]["text"]
        uri = res["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
        assert uri.endswith("evil.bin")


def test_table_output_to_a_file(app: typer.Typer, files: tuple[Path, Path], tmp_path: Path) -> None:
    out = tmp_path / "scan.txt"
    result = CliRunner().invoke(app, ["scan", str(files[1]), "--output", str(out)])
    assert result.exit_code == 1
    assert "dangerous" in out.read_text()


def test_usage_errors_raise_bastion_errors(app: typer.Typer, tmp_path: Path) -> None:
    runner = CliRunner()
    missing = runner.invoke(app, ["scan", str(tmp_path / "nope.pt")])
    assert isinstance(missing.exception, LoadError)
    assert "does not exist" in str(missing.exception)
    bad = runner.invoke(app, ["scan", str(tmp_path), "--format", "xml"])
    assert isinstance(bad.exception, ConfigError) and "--format" in str(bad.exception)
    none = runner.invoke(app, ["scan"])
    assert isinstance(none.exception, ConfigError)


def test_table_renders_at_a_fixed_width(files: tuple[Path, Path]) -> None:
    from rich.console import Console

    console = Console(width=100, record=True, no_color=True)
    render_table(scan_paths([files[1]]), console)
    text = console.export_text()
    assert "posix.system" in text and "1 files scanned: 0 clean, 1 with issues" in text
