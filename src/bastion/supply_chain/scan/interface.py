"""The scanner's result types: one `ScanIssue` per finding, one `ScanReport` per file scanned.

Every format module returns issues in these types; renderers and the CLI consume nothing else.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from bastion.core.errors import LoadError

__all__ = ["RULES", "ScanError", "ScanIssue", "ScanReport", "Verdict"]


class ScanError(LoadError):
    """A path given to the scanner does not exist or cannot be opened."""


class Verdict(enum.StrEnum):
    """How bad an issue is; every verdict makes ``bastion scan`` exit 1."""

    DANGEROUS = "dangerous"
    """Loading the file runs, or very likely can run, code chosen by whoever wrote the file."""
    SUSPICIOUS = "suspicious"
    """The file needs something outside the allow-list of known-safe reconstruction code."""
    UNPARSEABLE = "unparseable"
    """The file could not be parsed completely; the scanner cannot vouch for it."""

    @property
    def rank(self) -> int:
        """2 for dangerous, 1 for suspicious, 0 for unparseable."""
        return {"dangerous": 2, "suspicious": 1, "unparseable": 0}[self.value]


#: Rule ids (for SARIF) with their one-line description.
RULES: dict[str, str] = {
    "dangerous-global": "A pickle imports a known code-execution primitive.",
    "unknown-global": "A pickle imports a name outside the allow-list of safe reconstructors.",
    "computed-global": "A pickle imports a name computed at load time.",
    "build-on-global": "A pickle overwrites attributes of an imported module or class.",
    "indirect-call": "A pickle calls an object it built, rather than an imported name.",
    "extension-code": "A pickle imports through the copyreg extension registry.",
    "nested-pickle": "A byte string inside a pickle is itself a pickle with findings.",
    "unparseable": "The file or a member could not be parsed completely.",
    "archive-anomaly": "An archive's headers disagree in a way loaders tolerate.",
    "archive-limit": "An archive exceeds the depth or size bounds (possible zip bomb).",
    "archive-path": "An archive member's name escapes the extraction directory.",
    "safetensors-header": "A safetensors header is inconsistent with the file.",
    "onnx-external-data": "An ONNX tensor reads external data from outside the model directory.",
    "onnx-custom-domain": "An ONNX model uses operators from a non-standard domain.",
    "gguf-chat-template": "A GGUF chat template reaches Python internals (template injection).",
    "keras-lambda": "A Keras model contains a Lambda layer (serialised Python code).",
    "keras-module": "A Keras config names a module or function outside Keras.",
    "keras-safe-mode-bypass": "A Keras config calls a Keras function that defeats safe mode.",
    "keras-external-file": "A Keras config makes the loader read a file outside the model.",
    "tf-python-op": "A TensorFlow graph calls a Python function (PyFunc and friends).",
    "tf-file-op": "A TensorFlow graph reads, writes, lists or maps files.",
    "tf-checkpoint-path": "A TensorFlow checkpoint op uses a path the loader did not give.",
    "tf-unknown-op": "A TensorFlow graph uses an op outside the standard set (custom kernel).",
}


@dataclass(frozen=True)
class ScanIssue:
    """One finding in one file (or one member of an archive)."""

    path: str
    """The file on disk, as given or found while walking a directory."""
    member: str | None
    """Where inside the file: archive members joined by ``!``; None for the file itself."""
    format: str
    """The format the finding was made in (``pickle``, ``torch-zip``, ``safetensors``...)."""
    verdict: Verdict
    """How bad it is."""
    rule: str
    """A key of `RULES`."""
    reason: str
    """What was found and why it matters, in one sentence."""
    global_name: str | None = None
    """For pickle findings: the ``module.name`` imported."""
    offset: int | None = None
    """Byte offset of the evidence in the (decompressed) stream, when known."""

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict of every field."""
        return {
            "path": self.path,
            "member": self.member,
            "format": self.format,
            "verdict": self.verdict.value,
            "rule": self.rule,
            "reason": self.reason,
            "global": self.global_name,
            "offset": self.offset,
        }


@dataclass(frozen=True)
class ScanReport:
    """Everything the scanner found in one file."""

    path: str
    """The file on disk."""
    format: str
    """The detected top-level format, ``unknown`` for content the scanner does not model."""
    issues: tuple[ScanIssue, ...] = field(default=())
    """Findings, most severe first."""
    size: int = 0
    """The file's size in bytes."""
    seconds: float = 0.0
    """Time spent scanning the file."""

    @property
    def clean(self) -> bool:
        """True when the scan found nothing."""
        return not self.issues

    @property
    def worst(self) -> Verdict | None:
        """The most severe verdict among the issues, or None when clean."""
        if not self.issues:
            return None
        return max((i.verdict for i in self.issues), key=lambda v: v.rank)

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict, issues included."""
        return {
            "path": self.path,
            "format": self.format,
            "size": self.size,
            "seconds": round(self.seconds, 6),
            "verdict": self.worst.value if self.worst else "clean",
            "issues": [i.to_dict() for i in self.issues],
        }
