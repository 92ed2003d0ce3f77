"""The AST rules: true positives through aliases, and the safe forms as negatives."""

from pathlib import Path

from bastion.supply_chain.audit import RULES, scan_paths, scan_source

UNSAFE = """
import torch
import torch as t
from torch import load as L
import numpy as np
import pickle, cPickle, dill
from pickle import loads
import joblib
import pandas as pd
import yaml
from yaml import FullLoader
import keras
import tensorflow as tf
from tensorflow import keras as tfk

a = torch.load("m.pt")
b = t.load("m.pt", weights_only=False)
c = L(path)
d = np.load("x.npy", allow_pickle=True)
e = pickle.load(f)
f2 = loads(blob)
g = cPickle.loads(blob)
h = dill.load(f)
i = joblib.load("m.joblib")
j = pd.read_pickle("df.pkl")
k = yaml.load(text)
l2 = yaml.load(text, Loader=FullLoader)
m = yaml.unsafe_load(text)
n = keras.models.load_model("m.keras", safe_mode=False)
o = tf.keras.models.load_model("m.keras", safe_mode=False)
p = tfk.saving.load_model("m.keras", safe_mode=False)
keras.config.enable_unsafe_deserialization()
q = eval(user_input)
exec(compile(src, "f", "exec"))
"""

SAFE = """
import torch
import numpy as np
import yaml
import keras
from yaml import SafeLoader

a = torch.load("m.pt", weights_only=True)
b = np.load("x.npy")
c = np.load("x.npy", allow_pickle=False)
d = yaml.safe_load(text)
e = yaml.load(text, Loader=yaml.SafeLoader)
f = yaml.load(text, SafeLoader)
g = yaml.load(text, Loader=yaml.CSafeLoader)
h = keras.models.load_model("m.keras")
i = keras.models.load_model("m.keras", safe_mode=True)
j = eval("1 + 1")
k = obj.load("x")  # an unrelated method called load
"""


def test_true_positives_through_aliases() -> None:
    found = scan_source(UNSAFE, "unsafe.py")
    by_line = {(f.line, f.rule) for f in found}
    lines = UNSAFE.splitlines()

    def line_of(text: str) -> int:
        return next(i for i, ln in enumerate(lines, start=1) if ln.startswith(text))

    expected = {
        ("a = torch.load", "BST001"),
        ("b = t.load", "BST001"),
        ("c = L(", "BST001"),
        ("d = np.load", "BST002"),
        ("e = pickle.load", "BST003"),
        ("f2 = loads", "BST003"),
        ("g = cPickle", "BST003"),
        ("h = dill", "BST003"),
        ("i = joblib", "BST004"),
        ("j = pd.read_pickle", "BST005"),
        ("k = yaml.load", "BST006"),
        ("l2 = yaml.load", "BST006"),
        ("m = yaml.unsafe_load", "BST006"),
        ("n = keras", "BST007"),
        ("o = tf.keras", "BST007"),
        ("p = tfk", "BST007"),
        ("keras.config", "BST007"),
        ("q = eval", "BST008"),
        ("exec(", "BST008"),
    }
    for prefix, rule in expected:
        assert (line_of(prefix), rule) in by_line, (prefix, rule)
    assert len(found) == len(expected)
    torch_default = next(f for f in found if f.line == line_of("a = torch.load"))
    assert torch_default.call == "torch.load" and torch_default.column == 5
    assert "CVE-2025-32434" in torch_default.advisories
    aliased = next(f for f in found if f.line == line_of("c = L("))
    assert aliased.call == "torch.load"
    assert next(f for f in found if f.rule == "BST006").advisories == RULES["BST006"].advisories


def test_safe_forms_are_not_flagged() -> None:
    assert scan_source(SAFE, "safe.py") == []


def test_scan_paths_recurses_skips_venvs_and_reports_unparsable(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "train.py").write_text("import pickle\npickle.loads(b)\n")
    (tmp_path / ".venv" / "lib").mkdir(parents=True)
    (tmp_path / ".venv" / "lib" / "x.py").write_text("import pickle\npickle.loads(b)\n")
    (tmp_path / "broken.py").write_text("def (:\n")
    findings, unparsed = scan_paths([tmp_path])
    assert [(Path(f.path).name, f.line, f.rule) for f in findings] == [("train.py", 2, "BST003")]
    assert len(unparsed) == 1 and "broken.py" in unparsed[0]


def test_scanning_never_imports_or_runs_the_source(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    src = tmp_path / "payload.py"
    src.write_text(f"open({str(marker)!r}, 'w').write('x')\nimport pickle\npickle.loads(data)\n")
    findings, unparsed = scan_paths([src])
    assert [f.rule for f in findings] == ["BST003"] and unparsed == []
    assert not marker.exists()


def test_pattern_findings_become_core_findings(tmp_path: Path) -> None:
    from bastion.supply_chain.audit import audit, embedded_database

    src = tmp_path / "Train Script.py"
    src.write_text("import numpy as np, os\nx = np.load(os.environ['A'], allow_pickle=True)\n")
    report = audit(sources=[src], database=embedded_database())
    (finding,) = report.findings()
    assert finding.leaf == "software.unsafe-deserialization-call"
    assert finding.goal.value == "poisoning" and finding.severity.value == "critical"
    assert finding.evidence["rule"] == "BST002" and finding.evidence["line"] == 2
    assert "os.environ" in finding.evidence["source"]
    assert "CVE-2019-6446" in finding.evidence["advisories"]
