"""Requirements, lock files and installed distributions, audited end to end."""

import json
from pathlib import Path

import pytest

from bastion.core.errors import ConfigError
from bastion.core.results import Finding
from bastion.supply_chain.audit import (
    audit,
    embedded_database,
    installed_distributions,
    read_lock_file,
    read_requirements,
    site_packages_of,
)


def fake_venv(root: Path, packages: dict[str, str]) -> Path:
    site = root / "lib" / "python3.11" / "site-packages"
    for name, version in packages.items():
        info = site / f"{name.replace('-', '_')}-{version}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    return root


def test_fake_venv_audit_flags_vulnerable_and_not_fixed_versions(tmp_path: Path) -> None:
    venv = fake_venv(
        tmp_path / "venv",
        {
            "torch": "2.5.1",  # < 2.6.0: GHSA-53q9-r3pm-6pq6
            "Pillow": "10.2.0",  # exactly the fixed version of CVE-2023-50447
            "PyYAML": "5.3.1",  # fixed for CVE-2020-1747, still affected by CVE-2020-14343
            "scikit_learn": "1.5.0",  # fixed
            "keras": "3.0.0",  # exactly the introduced version of CVE-2025-1550
        },
    )
    deps = installed_distributions(site_packages_of(venv))
    assert {d.name for d in deps} == {"torch", "pillow", "pyyaml", "scikit-learn", "keras"}
    report = audit(site_packages=site_packages_of(venv), database=embedded_database())
    found = {(v.dependency.name, v.advisory.id) for v in report.vulnerabilities}
    assert ("torch", "GHSA-53q9-r3pm-6pq6") in found
    assert ("pyyaml", "GHSA-8q59-q68h-6hv4") in found
    assert ("pyyaml", "GHSA-6757-jp84-gxfx") not in found
    assert ("keras", "PYSEC-2025-122") in found
    assert not {n for n, _ in found} & {"pillow", "scikit-learn"}
    assert not report.clean
    findings = report.findings()
    assert all(isinstance(f, Finding) for f in findings)
    torch = next(f for f in findings if f.evidence.get("advisory") == "GHSA-53q9-r3pm-6pq6")
    assert torch.leaf == "software.vulnerable-dependency" and torch.goal.value == "poisoning"
    assert torch.severity.value == "critical" and "CVE-2025-32434" in torch.evidence["aliases"]


def test_requirements_pins_ranges_includes_and_hashes(tmp_path: Path) -> None:
    (tmp_path / "base.txt").write_text("numpy==1.16.0  # old\n")
    req = tmp_path / "requirements.txt"
    req.write_text(
        "-r base.txt\n--index-url https://example.invalid/simple\n\n"
        "transformers==4.35.2 \\\n    --hash=sha256:abc\n"
        "joblib>=1.0\nrequests===2.31.0\nonnx==1.*\n"
        "urllib3==2.2.2 ; python_version >= '3.8'\n-e ./local\n"
    )
    deps = read_requirements(req)
    pinned = {d.name: d.version for d in deps if d.pinned}
    assert pinned == {
        "numpy": "1.16.0",
        "transformers": "4.35.2",
        "requests": "2.31.0",
        "urllib3": "2.2.2",
    }
    assert {d.name for d in deps if not d.pinned} == {"joblib", "onnx", "./local"}
    assert next(d for d in deps if d.name == "transformers").line == 4
    report = audit(requirements=[req], database=embedded_database())
    ids = {v.advisory.id for v in report.vulnerabilities}
    assert {
        "PYSEC-2019-108",
        "PYSEC-2023-300",
        "PYSEC-2023-301",
        "GHSA-37q5-v5qm-c9v8",
        "GHSA-9wx4-h78v-vm56",
    } <= ids
    assert "GHSA-34jh-p97f-mpxf" not in ids
    assert {d.name for d in report.unverifiable} == {"joblib", "onnx", "./local"}


def test_bad_requirement_line_is_a_clear_error(tmp_path: Path) -> None:
    req = tmp_path / "r.txt"
    req.write_text("torch==2.0\nthis is not ( a requirement\n")
    with pytest.raises(ConfigError, match=r"r\.txt:2"):
        read_requirements(req)


def test_lock_files(tmp_path: Path) -> None:
    poetry = tmp_path / "poetry.lock"
    poetry.write_text(
        '[[package]]\nname = "Jinja2"\nversion = "3.1.5"\n\n'
        '[[package]]\nname = "protobuf"\nversion = "5.29.5"\n'
    )
    uv = tmp_path / "uv.lock"
    uv.write_text(
        'version = 1\n[[package]]\nname = "protobuf"\nversion = "5.29.4"\n'
        '[[package]]\nname = "myproj"\nsource = { editable = "." }\n'
    )
    pipfile = tmp_path / "Pipfile.lock"
    pipfile.write_text(
        json.dumps(
            {
                "_meta": {},
                "default": {"joblib": {"version": "==1.1.0"}},
                "develop": {"pytest": {"version": "*"}},
            }
        )
    )
    pylock = tmp_path / "pylock.toml"
    pylock.write_text('lock-version = "1.0"\n[[packages]]\nname = "onnx"\nversion = "1.15.0"\n')
    assert [(d.name, d.version) for d in read_lock_file(poetry)] == [
        ("jinja2", "3.1.5"),
        ("protobuf", "5.29.5"),
    ]
    report = audit(lock_files=[poetry, uv, pipfile, pylock], database=embedded_database())
    found = {
        (v.dependency.name, v.dependency.version, v.advisory.id) for v in report.vulnerabilities
    }
    assert ("jinja2", "3.1.5", "GHSA-cpwx-vrp4-4pq7") in found
    assert ("protobuf", "5.29.4", "GHSA-8qvm-5x2c-j2w7") in found
    assert not any(v == "5.29.5" for _, v, _ in found)
    assert ("joblib", "1.1.0", "PYSEC-2022-288") in found
    assert ("onnx", "1.15.0", "GHSA-whh8-fjgc-qp73") in found
    assert {d.name for d in report.unverifiable} == {"myproj", "pytest"}
