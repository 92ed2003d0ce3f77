"""Manifests: round trip, every tamper case, escaping paths, keys and the CLI."""

import json
import stat
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from bastion.cli.manifest import register
from bastion.core.errors import BastionError, ValidationError
from bastion.supply_chain.manifest import (
    create_manifest,
    generate_keypair,
    load_private_key,
    load_public_key,
    sha256_file,
    verify_manifest,
)

runner = CliRunner()


@pytest.fixture
def signed(tmp_path: Path) -> tuple[Path, Path, Path]:
    keys = tmp_path / "keys"
    private, public = generate_keypair(keys / "signer.pem")
    model_dir = tmp_path / "model"
    (model_dir / "cfg").mkdir(parents=True)
    (model_dir / "weights.safetensors").write_bytes(b"\x00" * 5000 + b"weights")
    (model_dir / "cfg" / "hparams.json").write_text('{"lr": 0.001}')
    manifest = model_dir / "manifest.json"
    create_manifest(
        [model_dir / "weights.safetensors"],
        configs=[model_dir / "cfg" / "hparams.json"],
        private_key=load_private_key(private),
        out=manifest,
    )
    return manifest, public, private


def kinds(manifest: Path, public: Path, strict: bool = False) -> list[str]:
    result = verify_manifest(manifest, load_public_key(public), strict=strict)
    assert result.ok is (not result.problems)
    return [p.kind for p in result.problems]


def test_round_trip(signed: tuple[Path, Path, Path]) -> None:
    manifest, public, _ = signed
    data = json.loads(manifest.read_text())
    assert [(f["path"], f["role"]) for f in data["files"]] == [
        ("weights.safetensors", "model"),
        ("cfg/hparams.json", "config"),
    ]
    digest, size = sha256_file(manifest.parent / "weights.safetensors")
    assert data["files"][0]["sha256"] == digest and data["files"][0]["size"] == size == 5007
    result = verify_manifest(manifest, load_public_key(public), strict=True)
    assert result.ok and result.files_checked == 2 and result.findings() == []
    assert verify_manifest(str(manifest), public).ok  # paths work as well as key objects


def test_private_key_mode_and_no_overwrite(tmp_path: Path) -> None:
    private, public = generate_keypair(tmp_path / "k.pem")
    assert stat.S_IMODE(private.stat().st_mode) == 0o600 and public.name == "k.pub"
    with pytest.raises(ValidationError, match="exists"):
        generate_keypair(tmp_path / "k.pem")


def test_changed_model_and_config(signed: tuple[Path, Path, Path]) -> None:
    manifest, public, _ = signed
    (manifest.parent / "cfg" / "hparams.json").write_text('{"lr": 0.1}')
    assert kinds(manifest, public) == ["changed"]
    with (manifest.parent / "weights.safetensors").open("r+b") as f:
        f.write(b"\x01")  # same size, different bytes
    assert kinds(manifest, public) == ["changed", "changed"]


def test_missing_and_extra_files(signed: tuple[Path, Path, Path]) -> None:
    manifest, public, _ = signed
    (manifest.parent / "cfg" / "hparams.json").unlink()
    (manifest.parent / "backdoor.pt").write_bytes(b"x")
    assert kinds(manifest, public) == ["missing"]
    result = verify_manifest(manifest, load_public_key(public), strict=True)
    assert [(p.kind, p.path) for p in result.problems] == [
        ("missing", "cfg/hparams.json"),
        ("extra", "backdoor.pt"),
    ]
    findings = result.findings()
    assert {f.leaf for f in findings} == {"software.model-integrity"}
    assert findings[0].goal.value == "poisoning"


def test_wrong_key_and_bad_signature(signed: tuple[Path, Path, Path], tmp_path: Path) -> None:
    manifest, public, _ = signed
    _, other = generate_keypair(tmp_path / "other.pem")
    assert kinds(manifest, other) == ["wrong-key"]
    data = json.loads(manifest.read_text())
    data["signature"] = data["signature"][:-4] + (
        "AAA=" if data["signature"][-4:] != "AAA=" else "BBB="
    )
    manifest.write_text(json.dumps(data))
    assert kinds(manifest, public) == ["bad-signature"]


@pytest.mark.parametrize(
    "edit",
    [
        lambda d: d["files"][0].update(sha256="0" * 64),
        lambda d: d["files"][1].update(size=1),
        lambda d: d["files"].pop(),
        lambda d: d.update(created="2000-01-01T00:00:00+00:00"),
        lambda d: d["files"][0].update(role="config"),
    ],
)
def test_tampered_manifest_json_fails_the_signature(
    signed: tuple[Path, Path, Path], edit: object
) -> None:
    manifest, public, _ = signed
    data = json.loads(manifest.read_text())
    edit(data)  # type: ignore[operator]
    manifest.write_text(json.dumps(data, indent=4))
    assert kinds(manifest, public) == ["bad-signature"]


def test_malformed_manifest(signed: tuple[Path, Path, Path]) -> None:
    manifest, public, _ = signed
    manifest.write_text("{broken")
    assert kinds(manifest, public) == ["malformed"]
    manifest.write_text(json.dumps({"format": "bastion-manifest/1", "files": "x"}))
    assert kinds(manifest, public) == ["malformed"]


def test_escaping_paths_refused_even_when_signed(tmp_path: Path) -> None:
    private, public = generate_keypair(tmp_path / "k.pem")
    key = load_private_key(private)
    outside = tmp_path / "secret.bin"
    outside.write_bytes(b"secret")
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "model.bin").write_bytes(b"model")
    with pytest.raises(ValidationError, match="inside the manifest directory"):
        create_manifest([outside], private_key=key, out=folder / "manifest.json")
    # a signer who lists ../secret.bin or a symlink that leaves the folder: refused at verify
    (folder / "link.bin").symlink_to(outside)
    manifest = folder / "manifest.json"
    create_manifest([folder / "model.bin"], private_key=key, out=manifest)
    import base64

    from bastion.supply_chain.manifest import _canonical

    data = json.loads(manifest.read_text())
    digest, size = sha256_file(outside)
    data["files"] += [
        {"path": "../secret.bin", "role": "config", "sha256": digest, "size": size},
        {"path": "link.bin", "role": "config", "sha256": digest, "size": size},
        {"path": str(outside), "role": "config", "sha256": digest, "size": size},
    ]
    payload = {k: v for k, v in data.items() if k != "signature"}
    data["signature"] = base64.b64encode(key.sign(_canonical(payload))).decode()
    manifest.write_text(json.dumps(data))
    result = verify_manifest(manifest, load_public_key(public))
    assert [p.kind for p in result.problems] == ["escaping-path"] * 3


def test_cli_keygen_create_verify(tmp_path: Path) -> None:
    app = typer.Typer()
    register(app)

    @app.command()
    def noop() -> None:
        """Nothing."""

    key = tmp_path / "key.pem"
    assert runner.invoke(app, ["manifest", "keygen", "--out", str(key)]).exit_code == 0
    model_dir = tmp_path / "m"
    model_dir.mkdir()
    (model_dir / "model.onnx").write_bytes(b"onnx")
    (model_dir / "config.yaml").write_text("lr: 0.1\n")
    out = model_dir / "manifest.json"
    created = runner.invoke(
        app,
        [
            "manifest",
            "create",
            str(model_dir / "model.onnx"),
            "--config",
            str(model_dir / "config.yaml"),
            "--key",
            str(key),
            "--out",
            str(out),
        ],
    )
    assert created.exit_code == 0, created.output
    pub = tmp_path / "key.pub"
    ok = runner.invoke(app, ["manifest", "verify", str(out), "--public-key", str(pub), "--strict"])
    assert ok.exit_code == 0, ok.output
    (model_dir / "config.yaml").write_text("lr: 10\n")
    bad = runner.invoke(
        app, ["manifest", "verify", str(out), "--public-key", str(pub), "--format", "json"]
    )
    assert bad.exit_code == 1
    assert json.loads(bad.output)["problems"][0]["path"] == "config.yaml"
    missing_key = runner.invoke(
        app, ["manifest", "verify", str(out), "--public-key", str(tmp_path / "none.pub")]
    )
    assert isinstance(missing_key.exception, BastionError)
