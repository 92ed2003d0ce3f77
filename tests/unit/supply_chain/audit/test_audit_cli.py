"""``bastion audit`` on a fresh Typer app: exit codes, formats, SARIF shape, ``audit update``."""

import json
import zipfile
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from bastion.cli.audit import register
from bastion.core.errors import BastionError
from bastion.supply_chain.audit import AdvisoryDatabaseError, local_database_path

runner = CliRunner()


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> typer.Typer:
    monkeypatch.setenv("BASTION_DATA_DIR", str(tmp_path / "data"))
    application = typer.Typer()
    register(application)

    @application.command()
    def noop() -> None:  # a second command keeps "audit" a named sub-command
        """Nothing."""

    return application


def test_clean_requirements_exit_zero(app: typer.Typer, tmp_path: Path) -> None:
    req = tmp_path / "requirements.txt"
    req.write_text("torch==2.11.0\npillow==10.2.0\n")
    result = runner.invoke(app, ["audit", "--requirements", str(req)])
    assert result.exit_code == 0, result.output
    assert "clean" in result.output


def test_vulnerable_pin_exits_one_and_json_names_ids(app: typer.Typer, tmp_path: Path) -> None:
    req = tmp_path / "requirements.txt"
    req.write_text("torch==2.5.1\n")
    result = runner.invoke(app, ["audit", "-r", str(req), "--format", "json"])
    assert result.exit_code == 1
    data = json.loads(result.output)
    assert "GHSA-53q9-r3pm-6pq6" in {v["id"] for v in data["vulnerabilities"]}
    assert data["vulnerabilities"][0]["line"] == 1


def test_sarif_structure(app: typer.Typer, tmp_path: Path) -> None:
    req = tmp_path / "requirements.txt"
    req.write_text("keras==3.7.0\n")
    src = tmp_path / "load.py"
    src.write_text("import sys, torch\nmodel = torch.load(sys.argv[1], weights_only=False)\n")
    result = runner.invoke(
        app, ["audit", "-r", str(req), "--source", str(src), "--format", "sarif"]
    )
    assert result.exit_code == 1
    log = json.loads(result.output)
    assert log["version"] == "2.1.0" and log["$schema"].endswith("sarif-2.1.0.json")
    run = log["runs"][0]
    rule_ids = {r["id"] for r in run["tool"]["driver"]["rules"]}
    assert {"PYSEC-2025-122", "BST001"} <= rule_ids
    for res in run["results"]:
        assert res["ruleId"] in rule_ids
        assert res["level"] in {"error", "warning", "note"}
        assert res["message"]["text"]
        loc = res["locations"][0]["physicalLocation"]
        assert loc["artifactLocation"]["uri"] and loc["region"]["startLine"] >= 1
    call = next(r for r in run["results"] if r["ruleId"] == "BST001")
    assert call["level"] == "error"
    assert call["locations"][0]["physicalLocation"]["region"] == {"startLine": 2, "startColumn": 9}


def test_usage_errors_raise_bastion_errors(app: typer.Typer, tmp_path: Path) -> None:
    result = runner.invoke(app, ["audit", "--source", str(tmp_path), "--format", "xml"])
    assert isinstance(result.exception, BastionError) and "--format" in str(result.exception)
    result = runner.invoke(app, ["audit", "--source", str(tmp_path), "--db", str(tmp_path / "x")])
    assert isinstance(result.exception, AdvisoryDatabaseError)


def test_update_installs_validated_copy_used_by_default(app: typer.Typer, tmp_path: Path) -> None:
    custom = [
        {
            "id": "PYSEC-9999-1",
            "aliases": ["CVE-9999-1"],
            "summary": "local entry",
            "affected": [
                {
                    "package": {"ecosystem": "PyPI", "name": "tinypkg"},
                    "ranges": [
                        {"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.0"}]}
                    ],
                }
            ],
        }
    ]
    archive = tmp_path / "all.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("PYSEC-9999-1.json", json.dumps(custom[0]))
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps([{"id": "X", "affected": "nope"}]))
    bad = runner.invoke(app, ["audit", "update", str(broken)])
    assert isinstance(bad.exception, AdvisoryDatabaseError) and "broken.json" in str(bad.exception)
    assert local_database_path() is None
    ok = runner.invoke(app, ["audit", "update", str(archive)])
    assert ok.exit_code == 0, ok.output
    installed = local_database_path()
    assert installed is not None and installed.name == "advisories.zip"
    req = tmp_path / "r.txt"
    req.write_text("tinypkg==1.0\ntorch==2.5.1\n")
    result = runner.invoke(app, ["audit", "-r", str(req), "--format", "json"])
    ids = {v["id"] for v in json.loads(result.output)["vulnerabilities"]}
    assert ids == {"PYSEC-9999-1"}  # the local copy replaced the embedded snapshot
    listing = tmp_path / "list.json"
    listing.write_text(json.dumps(custom))
    assert runner.invoke(app, ["audit", "update", str(listing)]).exit_code == 0
    replaced = local_database_path()
    assert replaced is not None and replaced.name == "advisories.json"
    assert not installed.exists()
