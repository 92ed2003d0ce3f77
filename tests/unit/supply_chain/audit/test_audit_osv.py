"""OSV parsing, PEP 440 range matching at the boundaries, and the three database forms."""

import json
import zipfile
from pathlib import Path
from typing import Any

import pytest

from bastion.core.threat_model import Goal, Severity
from bastion.supply_chain.audit import (
    AdvisoryDatabaseError,
    cvss3_base_score,
    embedded_database,
    load_database,
    normalize_name,
    parse_advisory,
)


def entry(ident: str, name: str, events: list[dict[str, str]], **extra: Any) -> dict[str, Any]:
    affected = {
        "package": {"ecosystem": "PyPI", "name": name},
        "ranges": [{"type": "ECOSYSTEM", "events": events}],
    }
    affected.update(extra.pop("affected_extra", {}))
    return {"id": ident, "summary": f"{ident} summary", "affected": [affected], **extra}


def test_normalize_name_follows_pep_503() -> None:
    assert normalize_name("Scikit_Learn") == "scikit-learn"
    assert normalize_name("zope.interface") == "zope-interface"
    assert normalize_name("a--b__c") == "a-b-c"


@pytest.mark.parametrize(
    ("version", "affected"),
    [
        ("1.0.0", False),
        ("1.1.0rc1", False),
        ("1.1.0", True),
        ("1.5", True),
        ("1.9.9", True),
        ("2.0.0rc1", True),
        ("2.0.0", False),
        ("2.0.1", False),
        ("3.0.0", True),
        ("3.2.0", True),
        ("3.2.0.post1", False),
        ("4.0", False),
    ],
)
def test_introduced_fixed_and_last_affected_boundaries(version: str, affected: bool) -> None:
    adv = parse_advisory(
        entry(
            "GHSA-test",
            "Demo_Pkg",
            [
                {"introduced": "1.1.0"},
                {"fixed": "2.0.0"},
                {"introduced": "3.0.0"},
                {"last_affected": "3.2.0"},
            ],
        ),
        "mem",
    )
    assert adv is not None
    assert adv.affects("demo-pkg", version) is affected


def test_introduced_zero_and_explicit_versions() -> None:
    adv = parse_advisory(
        entry(
            "PYSEC-x",
            "pkg",
            [{"introduced": "0"}, {"fixed": "0.5"}],
            affected_extra={"versions": ["0.9.1", "legacy-name"]},
        ),
        "mem",
    )
    assert adv is not None
    assert adv.affects("pkg", "0.0.1") and adv.affects("pkg", "0.4.9")
    assert not adv.affects("pkg", "0.5")
    assert adv.affects("pkg", "0.9.1") and not adv.affects("pkg", "0.9.2")
    assert adv.fixed_versions("pkg") == ("0.5",)


def test_git_ranges_other_ecosystems_and_withdrawn_entries_are_ignored() -> None:
    git = entry("A", "pkg", [{"introduced": "0"}])
    git["affected"][0]["ranges"] = [
        {"type": "GIT", "events": [{"introduced": "0"}, {"fixed": "abc"}]}
    ]
    adv = parse_advisory(git, "mem")
    assert adv is not None and not adv.affects("pkg", "1.0")
    npm = entry("B", "pkg", [{"introduced": "0"}])
    npm["affected"][0]["package"]["ecosystem"] = "npm"
    assert parse_advisory(npm, "mem") is None
    assert (
        parse_advisory(entry("C", "pkg", [{"introduced": "0"}], withdrawn="2024-01-01"), "m")
        is None
    )


def test_severity_from_cvss_vector_and_label_and_goal() -> None:
    assert cvss3_base_score("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H") == 9.8
    assert cvss3_base_score("CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:N/A:N") == 8.6
    assert cvss3_base_score("CVSS:3.1/AV:N/AC:H/PR:H/UI:N/S:U/C:H/I:N/A:N") == 4.4
    vec = entry(
        "D",
        "pkg",
        [{"introduced": "0"}],
        severity=[{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:H/PR:H/UI:N/S:U/C:H/I:N/A:N"}],
        details="Proxy-Authorization header leak",
    )
    adv = parse_advisory(vec, "m")
    assert adv is not None and adv.severity is Severity.MEDIUM and adv.goal is Goal.ESPIONAGE
    lab = entry(
        "E",
        "pkg",
        [{"introduced": "0"}],
        database_specific={"severity": "CRITICAL"},
        details="denial of service by unbounded recursion",
    )
    adv = parse_advisory(lab, "m")
    assert adv is not None and adv.severity is Severity.CRITICAL and adv.goal is Goal.DISRUPTION


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda e: e.pop("id"), "id"),
        (lambda e: e["affected"][0]["package"].pop("name"), "affected[0].package.name"),
        (lambda e: e["affected"][0]["ranges"][0].update(events="x"), "events"),
        (
            lambda e: e["affected"][0]["ranges"][0]["events"].append(
                {"fixed": "1", "introduced": "0"}
            ),
            "exactly one",
        ),
        (
            lambda e: e["affected"][0]["ranges"][0]["events"].append({"fixed": "not a version!"}),
            "PEP 440",
        ),
        (lambda e: e.update(aliases="CVE-1"), "aliases"),
    ],
)
def test_malformed_entries_name_the_file(tmp_path: Path, mutate: Any, needle: str) -> None:
    bad = entry("GHSA-bad", "pkg", [{"introduced": "0"}, {"fixed": "1.0"}])
    mutate(bad)
    folder = tmp_path / "db"
    folder.mkdir()
    (folder / "good.json").write_text(json.dumps(entry("G", "pkg", [{"introduced": "0"}])))
    (folder / "broken.json").write_text(json.dumps(bad))
    with pytest.raises(AdvisoryDatabaseError, match=r"broken\.json") as info:
        load_database(folder)
    assert needle in str(info.value)


def test_not_json_names_the_zip_member(tmp_path: Path) -> None:
    archive = tmp_path / "all.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("PYSEC-1.json", json.dumps(entry("PYSEC-1", "pkg", [{"introduced": "0"}])))
        zf.writestr("PYSEC-2.json", "{not json")
    with pytest.raises(AdvisoryDatabaseError, match=r"all\.zip!PYSEC-2\.json"):
        load_database(archive)


def test_zip_dir_and_list_databases_agree(tmp_path: Path) -> None:
    entries = [
        entry("PYSEC-1", "Pillow", [{"introduced": "0"}, {"fixed": "10.2.0"}], aliases=["CVE-1"]),
        entry("GHSA-2", "torch", [{"introduced": "0"}, {"fixed": "2.6.0"}]),
    ]
    archive = tmp_path / "all.zip"
    folder = tmp_path / "dir"
    (folder / "nested").mkdir(parents=True)
    with zipfile.ZipFile(archive, "w") as zf:
        for e in entries:
            zf.writestr(f"{e['id']}.json", json.dumps(e))
        zf.writestr("README.txt", "not an advisory")
    for e in entries:
        (folder / "nested" / f"{e['id']}.json").write_text(json.dumps(e))
    listing = tmp_path / "list.json"
    listing.write_text(json.dumps(entries))
    for db in (load_database(archive), load_database(folder), load_database(listing)):
        assert len(db) == 2
        assert [a.id for a in db.matching("pillow", "10.1.0")] == ["PYSEC-1"]
        assert db.matching("pillow", "10.2.0") == ()
        assert [a.id for a in db.matching("TORCH", "2.5.1")] == ["GHSA-2"]


def test_missing_database_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(AdvisoryDatabaseError, match="does not exist"):
        load_database(tmp_path / "nope.zip")


def test_embedded_snapshot_is_verified_and_matches_known_cases() -> None:
    db = embedded_database()
    assert 25 <= len(db) <= 40
    for name in (
        "torch",
        "keras",
        "numpy",
        "pillow",
        "transformers",
        "onnx",
        "joblib",
        "scikit-learn",
        "protobuf",
        "requests",
        "urllib3",
        "jinja2",
        "pyyaml",
        "tensorflow",
    ):
        assert db.for_package(name), name
    for package in db.packages:
        for adv in db.for_package(package):
            assert adv.raw["database_specific"]["bastion_source"].startswith("http")
    torch_ids = {a.id for a in db.matching("torch", "2.5.1")}
    assert "GHSA-53q9-r3pm-6pq6" in torch_ids
    assert "GHSA-53q9-r3pm-6pq6" not in {a.id for a in db.matching("torch", "2.6.0")}
    keras = {a.id for a in db.matching("keras", "3.7.0")}
    assert {"PYSEC-2025-122", "PYSEC-2025-75"} <= keras
    assert "PYSEC-2025-122" not in {a.id for a in db.matching("keras", "3.8.0")}
    assert {a.id for a in db.matching("urllib3", "2.2.1")} == {"GHSA-34jh-p97f-mpxf"}
    assert db.matching("urllib3", "1.26.19") == () and db.matching("urllib3", "2.2.2") == ()


def test_update_refuses_a_database_without_pypi_entries(tmp_path: Path) -> None:
    from bastion.supply_chain.audit import local_database_path, update_database

    npm = entry("N", "left-pad", [{"introduced": "0"}])
    npm["affected"][0]["package"]["ecosystem"] = "npm"
    source = tmp_path / "npm.json"
    source.write_text(json.dumps([npm]))
    with pytest.raises(AdvisoryDatabaseError, match="no PyPI advisory"):
        update_database(source, data_dir=tmp_path / "data")
    assert local_database_path(tmp_path / "data") is None
