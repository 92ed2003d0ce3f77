"""Unsafe model- and data-loading calls in Python source, found by static analysis.

The source is parsed with `ast` and never imported or run. Imports are followed through
aliases (``import torch as t``, ``from torch import load as L``, ``from tensorflow import
keras``), so a call is recognised by the fully qualified name it resolves to. The file or data
a loading call reads is traced back (`bastion.supply_chain.audit.taint`): a finding whose input
comes from outside the program (command line, environment, request, download, a parameter of a
CLI or web entry point, including through the module's own functions) is one step more severe
and names that source; one that only reads a literal or bundled path is one step less severe.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bastion.core.errors import LoadError
from bastion.core.threat_model import Severity
from bastion.supply_chain.audit.taint import BUNDLED, OUTSIDE, Flow

__all__ = ["RULES", "PatternFinding", "Rule", "scan_source", "scan_paths"]


@dataclass(frozen=True)
class Rule:
    """One kind of unsafe call.

    Attributes:
        id: stable id, e.g. ``"BST001"``.
        name: short kebab-case name.
        description: what is wrong and what to do instead.
        advisories: advisory ids (GHSA/PYSEC/CVE) about this loading path.
    """

    id: str
    name: str
    description: str
    advisories: tuple[str, ...] = ()


RULES: dict[str, Rule] = {
    r.id: r
    for r in (
        Rule(
            "BST001",
            "torch-load-without-weights-only",
            "torch.load unpickles arbitrary objects unless weights_only=True (the default only "
            "from torch 2.6); pass weights_only=True and keep torch >= 2.6.",
            ("GHSA-53q9-r3pm-6pq6", "CVE-2025-32434"),
        ),
        Rule(
            "BST002",
            "numpy-load-allow-pickle",
            "numpy.load(allow_pickle=True) unpickles object arrays from the file; store plain "
            "arrays and load them with allow_pickle=False.",
            ("PYSEC-2019-108", "CVE-2019-6446"),
        ),
        Rule(
            "BST003",
            "pickle-load",
            "pickle-family deserialisers (pickle, cPickle, dill, cloudpickle, marshal) run code "
            "from the data; use safetensors, JSON or another data-only format.",
        ),
        Rule(
            "BST004",
            "joblib-load",
            "joblib.load unpickles the file; load only files you produced, or use skops/ONNX.",
            ("PYSEC-2024-277", "CVE-2024-34997"),
        ),
        Rule(
            "BST005",
            "pandas-read-pickle",
            "pandas.read_pickle unpickles the file; prefer Parquet, Feather or CSV.",
        ),
        Rule(
            "BST006",
            "yaml-unsafe-load",
            "yaml.load without SafeLoader (or full_load/unsafe_load) constructs arbitrary Python "
            "objects; use yaml.safe_load.",
            ("GHSA-rprw-h62v-c2w7", "CVE-2017-18342", "GHSA-8q59-q68h-6hv4", "CVE-2020-14343"),
        ),
        Rule(
            "BST007",
            "keras-unsafe-deserialization",
            "Keras loading with safe_mode=False (or enable_unsafe_deserialization) runs Lambda "
            "layer bytecode from the model file; keep safe mode on and keras >= 3.11.3.",
            ("GHSA-x4wf-678h-2pmq", "CVE-2024-3660", "PYSEC-2025-122", "CVE-2025-1550"),
        ),
        Rule(
            "BST008",
            "eval-exec-on-data",
            "eval/exec of a value that is not a literal runs whatever the data says.",
        ),
    )
}

_PICKLE_MODULES = ("pickle", "_pickle", "cPickle", "dill", "cloudpickle")
_PICKLE_CALLS = frozenset(
    [f"{m}.{f}" for m in _PICKLE_MODULES for f in ("load", "loads", "Unpickler")]
    + ["marshal.load", "marshal.loads", "shelve.open"]
)
_KERAS_LOADERS = frozenset(
    f"{prefix}.{suffix}"
    for prefix in ("keras", "tensorflow.keras", "tf_keras")
    for suffix in (
        "models.load_model",
        "saving.load_model",
        "layers.deserialize",
        "saving.deserialize_keras_object",
        "utils.deserialize_keras_object",
        "src.saving.saving_api.load_model",
        "src.saving.serialization_lib.deserialize_keras_object",
    )
)
_KERAS_UNSAFE = frozenset(
    f"{p}.{s}"
    for p in ("keras", "tensorflow.keras", "tf_keras")
    for s in (
        "config.enable_unsafe_deserialization",
        "src.saving.serialization_lib.enable_unsafe_deserialization",
    )
)
_SAFE_YAML_LOADERS = frozenset({"SafeLoader", "CSafeLoader", "BaseLoader", "CBaseLoader"})


@dataclass(frozen=True)
class PatternFinding:
    """One unsafe call in one file.

    Attributes:
        path: the source file.
        line: 1-based line of the call.
        column: 1-based column of the call.
        rule: the rule id (a key of `RULES`).
        call: the fully qualified name the call resolves to.
        message: what is wrong at this call.
        severity: how bad it is here (lower when an argument could not be resolved statically
            or the call reads only a literal or bundled path, higher when its input comes from
            outside the program).
        advisories: the advisory ids the rule relates to.
        source: where the call's input comes from, when that is known (outside or bundled).
    """

    path: str
    line: int
    column: int
    rule: str
    call: str
    message: str
    severity: Severity
    advisories: tuple[str, ...] = field(default=())
    source: str | None = None


#: Keyword names under which the loading calls take the file or data they read.
_DATA_KEYWORDS = ("f", "file", "filename", "filepath", "fname", "filepath_or_buffer", "stream",
                  "data", "source", "path")  # fmt: skip
_SEVERITIES = list(Severity)


def _shift(severity: Severity, steps: int) -> Severity:
    """``severity`` moved ``steps`` along the scale, kept between low and critical."""
    return _SEVERITIES[max(1, min(len(_SEVERITIES) - 1, _SEVERITIES.index(severity) + steps))]


def _data_argument(call: ast.Call) -> ast.expr | None:
    if call.args and not isinstance(call.args[0], ast.Starred):
        return call.args[0]
    return next((kw.value for kw in call.keywords if kw.arg in _DATA_KEYWORDS), None)


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    for kw in call.keywords:
        if kw.arg == name:
            return kw.value
    return None


def _has_star_kwargs(call: ast.Call) -> bool:
    return any(kw.arg is None for kw in call.keywords)


class _Visitor(ast.NodeVisitor):
    def __init__(self, path: str, tree: ast.Module) -> None:
        self.path = path
        self.aliases: dict[str, str] = {}
        self.found: list[PatternFinding] = []
        self.tree = tree
        self.flow: Flow | None = None  # built on the first finding: most files have none
        self.scopes: list[ast.AST] = [tree]

    def _scoped(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> None:
        self.scopes.append(node)
        self.generic_visit(node)
        self.scopes.pop()

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._scoped(node)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        self._scoped(node)

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self._scoped(node)

    def _learn_import(self, node: ast.Import | ast.ImportFrom) -> None:
        if isinstance(node, ast.Import):
            self.visit_Import(node)
        else:
            self.visit_ImportFrom(node)

    # imports: record what each local name refers to
    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.asname:
                self.aliases[alias.asname] = alias.name
            else:
                top = alias.name.split(".")[0]
                self.aliases[top] = top

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.module is None or node.level:
            return
        for alias in node.names:
            if alias.name != "*":
                self.aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"

    def _qualified(self, node: ast.expr) -> str | None:
        parts: list[str] = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if not isinstance(node, ast.Name):
            return None
        base = self.aliases.get(node.id, node.id)
        return ".".join([base, *reversed(parts)])

    def _add(self, node: ast.Call, rule: str, call: str, msg: str, severity: Severity) -> None:
        source = None
        data = _data_argument(node)
        if data is not None:
            if self.flow is None:  # it learns every import of the file as it indexes
                self.flow = Flow(self.tree, self._qualified, self._learn_import)
            origin = self.flow.origin(data, self.scopes[-1])
            if origin.kind == OUTSIDE:
                severity, source = _shift(severity, 1), origin.what
                msg += f"; its input comes from outside: {origin.what}"
            elif origin.kind == BUNDLED:
                severity, source = _shift(severity, -1), origin.what
                msg += f" (reads {origin.what})"
        self.found.append(
            PatternFinding(
                self.path,
                node.lineno,
                node.col_offset + 1,
                rule,
                call,
                msg,
                severity,
                RULES[rule].advisories,
                source,
            )
        )

    def visit_Call(self, node: ast.Call) -> None:
        self.generic_visit(node)
        name = self._qualified(node.func)
        if name is None:
            return
        name = name.replace("tensorflow.python.keras", "tensorflow.keras")
        if name in ("torch.load", "torch.serialization.load"):
            self._torch_load(node, name)
        elif name == "numpy.load":
            self._flag_true(node, name, "allow_pickle", "BST002", "numpy.load(allow_pickle=True)")
        elif name in _PICKLE_CALLS:
            self._add(
                node, "BST003", name, f"{name}() deserialises code-bearing data", Severity.HIGH
            )
        elif name in ("joblib.load", "sklearn.externals.joblib.load"):
            self._add(node, "BST004", name, f"{name}() unpickles the file", Severity.HIGH)
        elif name == "pandas.read_pickle":
            self._add(
                node, "BST005", name, "pandas.read_pickle() unpickles the file", Severity.HIGH
            )
        elif name.startswith("yaml."):
            self._yaml(node, name)
        elif name in _KERAS_LOADERS:
            self._flag_false(node, name, "safe_mode", "BST007")
        elif name in _KERAS_UNSAFE:
            self._add(node, "BST007", name, f"{name}() turns Keras safe mode off", Severity.HIGH)
        elif name in ("eval", "exec", "builtins.eval", "builtins.exec"):
            self._eval(node, name)

    def _torch_load(self, node: ast.Call, name: str) -> None:
        value = _keyword(node, "weights_only")
        if isinstance(value, ast.Constant) and value.value is True:
            return
        if value is None and _has_star_kwargs(node):
            msg, sev = f"{name}() with weights_only hidden in **kwargs", Severity.LOW
        elif value is None:
            msg = f"{name}() without weights_only=True (unsafe on torch < 2.6)"
            sev = Severity.MEDIUM
        elif isinstance(value, ast.Constant) and value.value is False:
            msg, sev = f"{name}(weights_only=False) unpickles arbitrary objects", Severity.HIGH
        else:
            msg, sev = f"{name}() with a weights_only that is not the literal True", Severity.LOW
        self._add(node, "BST001", name, msg, sev)

    def _flag_true(self, node: ast.Call, name: str, kw: str, rule: str, text: str) -> None:
        value = _keyword(node, kw)
        if isinstance(value, ast.Constant) and value.value is True:
            self._add(node, rule, name, f"{text} unpickles object arrays", Severity.HIGH)
        elif (value is not None and not isinstance(value, ast.Constant)) or (
            value is None and _has_star_kwargs(node)
        ):
            self._add(node, rule, name, f"{name}() with a {kw} not known statically", Severity.LOW)

    def _flag_false(self, node: ast.Call, name: str, kw: str, rule: str) -> None:
        value = _keyword(node, kw)
        if isinstance(value, ast.Constant) and value.value is False:
            self._add(node, rule, name, f"{name}({kw}=False) runs Lambda bytecode", Severity.HIGH)
        elif (value is not None and not isinstance(value, ast.Constant)) or (
            value is None and _has_star_kwargs(node)
        ):
            self._add(node, rule, name, f"{name}() with a {kw} not known statically", Severity.LOW)

    def _yaml(self, node: ast.Call, name: str) -> None:
        func = name.split(".", 1)[1]
        if func in ("unsafe_load", "unsafe_load_all", "full_load", "full_load_all"):
            self._add(node, "BST006", name, f"{name}() constructs Python objects", Severity.HIGH)
            return
        if func not in ("load", "load_all"):
            return
        loader = _keyword(node, "Loader")
        if loader is None and len(node.args) > 1:
            loader = node.args[1]
        if loader is None:
            self._add(node, "BST006", name, f"{name}() without a Loader", Severity.HIGH)
            return
        loader_name = self._qualified(loader) or ""
        if loader_name.rsplit(".", 1)[-1] not in _SAFE_YAML_LOADERS:
            shown = loader_name or "a computed loader"
            self._add(node, "BST006", name, f"{name}() with {shown}", Severity.HIGH)

    def _eval(self, node: ast.Call, name: str) -> None:
        if not node.args:
            return
        first = node.args[0]
        if isinstance(first, ast.Constant) and isinstance(first.value, str):
            return  # a fixed string is code the author wrote, not data
        self._add(node, "BST008", name, f"{name}() of a non-literal value", Severity.HIGH)


def scan_source(source: str, path: str = "<string>") -> list[PatternFinding]:
    """Findings for one module's source text. Raises `LoadError` if it is not valid Python."""
    try:
        tree = ast.parse(source, filename=path)
    except (SyntaxError, ValueError) as exc:
        raise LoadError(f"Cannot parse {path} as Python: {exc}") from None
    visitor = _Visitor(path, tree)
    visitor.visit(tree)
    return sorted(visitor.found, key=lambda f: (f.line, f.column, f.rule))


_SKIP_DIRS = frozenset({".git", ".venv", "venv", "__pycache__", "node_modules", ".tox", ".nox"})


def _python_files(paths: Iterable[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_file():
            yield path
        elif path.is_dir():
            for file in sorted(path.rglob("*.py")):
                if not _SKIP_DIRS.intersection(file.relative_to(path).parts[:-1]):
                    yield file
        else:
            raise LoadError(f"Source path {path} does not exist")


def scan_paths(paths: Iterable[Path]) -> tuple[list[PatternFinding], list[str]]:
    """Scan files and directories (recursively, skipping virtualenvs and VCS folders).

    Returns the findings and the files that could not be parsed (each with the reason).
    """
    findings: list[PatternFinding] = []
    unparsed: list[str] = []
    for file in _python_files(paths):
        try:
            source = file.read_text(encoding="utf-8")
            findings += scan_source(source, str(file))
        except (LoadError, OSError, UnicodeDecodeError) as exc:
            unparsed.append(f"{file}: {exc}")
    return findings, unparsed
