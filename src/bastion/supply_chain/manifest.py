"""Integrity manifests: model and configuration files signed together with Ed25519.

A manifest is a JSON file that lists, for every file, its path relative to the manifest's
directory, its size and SHA-256 (streamed, so memory does not grow with the file), with the
creation time and the signer's public-key fingerprint. The Ed25519 signature (RFC 8032, via
the ``cryptography`` library) covers the canonical JSON encoding of everything but the
signature itself: keys sorted, no whitespace, UTF-8. `verify_manifest` is what a server calls
before it serves a model; it names every mismatch and never raises on a tampered manifest.
"""

from __future__ import annotations

import base64
import binascii
import datetime as _dt
import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from bastion.core.errors import LoadError, ValidationError
from bastion.core.results import Finding
from bastion.core.threat_model import Goal, Severity

__all__ = [
    "MANIFEST_FORMAT",
    "ManifestProblem",
    "ManifestVerification",
    "create_manifest",
    "generate_keypair",
    "key_fingerprint",
    "load_private_key",
    "load_public_key",
    "sha256_file",
    "verify_manifest",
]

#: The ``format`` field of every manifest bastion writes.
MANIFEST_FORMAT = "bastion-manifest/1"
_CHUNK = 1 << 20


def sha256_file(path: Path) -> tuple[str, int]:
    """The SHA-256 hex digest and size of a file, read in 1 MiB chunks."""
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _canonical(payload: Mapping[str, Any]) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_fingerprint(key: Ed25519PublicKey) -> str:
    """``sha256:`` followed by the hex SHA-256 of the raw 32-byte public key."""
    return "sha256:" + hashlib.sha256(_raw_public(key)).hexdigest()


def generate_keypair(out: Path, *, overwrite: bool = False) -> tuple[Path, Path]:
    """Write a new Ed25519 private key (PEM, PKCS#8, mode 0600) to ``out`` and its public key
    (PEM) next to it (``key.pem`` gives ``key.pub``). Returns both paths.

    Refuses to replace existing files unless ``overwrite``.
    """
    public = out.with_suffix(".pub") if out.suffix in (".pem", ".key") else Path(f"{out}.pub")
    for path in (out, public):
        if path.exists() and not overwrite:
            raise ValidationError(f"Expected --out to name a new file, but {path} exists")
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as stream:
        stream.write(private_pem)
    os.chmod(out, 0o600)  # the umask may have narrowed it; never wider than 0600
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return out, public


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """Read a PEM Ed25519 private key (unencrypted PKCS#8)."""
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except OSError as exc:
        raise LoadError(f"Cannot read private key {path}: {exc.strerror}") from None
    except (ValueError, TypeError) as exc:
        raise LoadError(f"{path} is not an unencrypted PEM private key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise LoadError(f"{path} holds a {type(key).__name__}, not an Ed25519 private key")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    """Read a PEM Ed25519 public key."""
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except OSError as exc:
        raise LoadError(f"Cannot read public key {path}: {exc.strerror}") from None
    except (ValueError, TypeError) as exc:
        raise LoadError(f"{path} is not a PEM public key: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise LoadError(f"{path} holds a {type(key).__name__}, not an Ed25519 public key")
    return key


def _inside(root: Path, path: Path) -> str | None:
    """``path`` relative to ``root`` as POSIX text, or None if it escapes ``root``."""
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return None


def create_manifest(
    models: Sequence[Path],
    *,
    configs: Sequence[Path] = (),
    private_key: Ed25519PrivateKey,
    out: Path,
) -> dict[str, Any]:
    """Hash ``models`` and ``configs``, sign them together and write the manifest to ``out``.

    Every file must lie inside the manifest's directory (``out.parent``), so the manifest can
    travel with the files. Returns the manifest as written.
    """
    root = out.parent
    entries: list[dict[str, Any]] = []
    seen: set[str] = set()
    for role, paths in (("model", models), ("config", configs)):
        for path in paths:
            if not path.is_file():
                raise LoadError(f"Cannot sign {path}: not a file")
            relative = _inside(root, path)
            if relative is None:
                raise ValidationError(
                    f"Expected {path} to lie inside the manifest directory {root}"
                )
            if relative in seen:
                raise ValidationError(f"Expected each file once, but {relative} came twice")
            seen.add(relative)
            digest, size = sha256_file(path)
            entries.append({"path": relative, "role": role, "sha256": digest, "size": size})
    if not any(e["role"] == "model" for e in entries):
        raise ValidationError("Expected at least one model file, but got none")
    payload: dict[str, Any] = {
        "format": MANIFEST_FORMAT,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "algorithm": "ed25519",
        "digest": "sha256",
        "public_key": key_fingerprint(private_key.public_key()),
        "files": entries,
    }
    signature = private_key.sign(_canonical(payload))
    manifest = {**payload, "signature": base64.b64encode(signature).decode("ascii")}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return manifest


@dataclass(frozen=True)
class ManifestProblem:
    """One reason a manifest does not verify.

    Attributes:
        kind: ``malformed``, ``bad-signature``, ``wrong-key``, ``escaping-path``, ``missing``,
            ``changed`` or ``extra``.
        path: the file concerned, when there is one.
        message: one line for a person.
    """

    kind: str
    path: str | None
    message: str


@dataclass(frozen=True)
class ManifestVerification:
    """What `verify_manifest` established.

    Attributes:
        manifest: the manifest file.
        problems: every mismatch; empty when it verified.
        files_checked: how many listed files were hashed.
    """

    manifest: str
    problems: tuple[ManifestProblem, ...] = field(default=())
    files_checked: int = 0

    @property
    def ok(self) -> bool:
        """True when the signature verified and every file matched."""
        return not self.problems

    def __bool__(self) -> bool:
        return self.ok

    def findings(self) -> list[Finding]:
        """One `Finding` per problem, on the model-integrity leaf."""
        return [
            Finding(
                id=f"software.model-integrity.{p.kind}.{i}",
                title=p.message,
                goal=Goal.POISONING,
                leaf="software.model-integrity",
                severity=Severity.HIGH if p.kind != "extra" else Severity.MEDIUM,
                evidence={"manifest": self.manifest, "kind": p.kind, "path": p.path},
                description="The model or its configuration is not the one that was signed.",
            )
            for i, p in enumerate(self.problems)
        ]


def _structure(data: Any) -> str | None:
    if not isinstance(data, dict):
        return "the manifest is not a JSON object"
    if data.get("format") != MANIFEST_FORMAT:
        return f"format is {data.get('format')!r}, expected {MANIFEST_FORMAT!r}"
    for key, kind in (("signature", str), ("public_key", str), ("files", list)):
        if not isinstance(data.get(key), kind):
            return f"field {key!r} is missing or has the wrong type"
    for i, entry in enumerate(data["files"]):
        if not (
            isinstance(entry, dict)
            and isinstance(entry.get("path"), str)
            and isinstance(entry.get("sha256"), str)
            and isinstance(entry.get("size"), int)
        ):
            return f"files[{i}] needs a string path, a string sha256 and an integer size"
    return None


def verify_manifest(
    manifest: str | os.PathLike[str],
    public_key: Ed25519PublicKey | str | os.PathLike[str],
    *,
    strict: bool = False,
) -> ManifestVerification:
    """Check the signature of ``manifest`` with ``public_key`` (a key or a PEM file) and every
    file it lists.

    With ``strict``, files in the manifest's directory (recursively) that it does not list are
    problems too. Paths that leave the directory (``..``, absolute paths, symlinks pointing
    out) are refused and never opened. Raises only when the manifest file cannot be read.
    """
    manifest = Path(manifest)
    if not isinstance(public_key, Ed25519PublicKey):
        public_key = load_public_key(Path(public_key))
    name = str(manifest)
    try:
        raw = manifest.read_bytes()
    except OSError as exc:
        raise LoadError(f"Cannot read manifest {manifest}: {exc.strerror}") from None
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return ManifestVerification(name, (ManifestProblem("malformed", None, f"not JSON: {exc}"),))
    reason = _structure(data)
    if reason is not None:
        return ManifestVerification(name, (ManifestProblem("malformed", None, reason),))
    if data["public_key"] != key_fingerprint(public_key):
        problem = ManifestProblem(
            "wrong-key", None, f"signed by {data['public_key']}, not by the given public key"
        )
        return ManifestVerification(name, (problem,))
    payload = {k: v for k, v in data.items() if k != "signature"}
    try:
        public_key.verify(base64.b64decode(data["signature"], validate=True), _canonical(payload))
    except (InvalidSignature, binascii.Error, ValueError):
        problem = ManifestProblem(
            "bad-signature", None, "the signature does not match the manifest"
        )
        return ManifestVerification(name, (problem,))
    return _check_files(manifest, data["files"], strict)


def _check_files(
    manifest: Path, entries: list[dict[str, Any]], strict: bool
) -> ManifestVerification:
    root = manifest.parent
    problems: list[ManifestProblem] = []
    listed: set[str] = set()
    checked = 0
    for entry in entries:
        text = entry["path"]
        pure = PurePosixPath(text)
        target = root / pure
        relative = _inside(root, target)
        if pure.is_absolute() or ".." in pure.parts or relative is None:
            problems.append(ManifestProblem("escaping-path", text, f"{text} leaves {root}"))
            continue
        listed.add(relative)
        if not target.is_file():
            problems.append(ManifestProblem("missing", text, f"{text} is missing"))
            continue
        digest, size = sha256_file(target)
        checked += 1
        if digest != entry["sha256"] or size != entry["size"]:
            problems.append(
                ManifestProblem(
                    "changed", text, f"{text} changed: sha256 {digest[:16]}..., {size} bytes"
                )
            )
    if strict:
        own = _inside(root, manifest)
        for file in sorted(p for p in root.rglob("*") if p.is_file()):
            relative = _inside(root, file)
            if relative is not None and relative not in listed and relative != own:
                problems.append(ManifestProblem("extra", relative, f"{relative} is not listed"))
    return ManifestVerification(str(manifest), tuple(problems), checked)
