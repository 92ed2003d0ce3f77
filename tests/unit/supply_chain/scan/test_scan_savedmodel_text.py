"""TensorFlow SavedModel in the protobuf text format (``saved_model.pbtxt``): parsed without
TensorFlow, checked like the binary format, and fail-closed on text that does not parse."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from bastion.supply_chain.scan import ScanReport, Verdict, scan_paths
from bastion.supply_chain.scan.savedmodel_text import _unescape
from bastion.supply_chain.scan.scanner import INTERNAL_ERROR


def q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def node(name: str, op: str, *inputs: str, attrs: str = "") -> str:
    ins = " ".join(f"input: {q(i)}" for i in inputs)
    return f"node {{ name: {q(name)} op: {q(op)} {ins} {attrs} }}"


def const(name: str, *texts: str, key: str = "node") -> str:
    vals = " ".join(f"string_val: {q(t)}" for t in texts)
    tensor = f"tensor {{ dtype: DT_STRING tensor_shape {{ dim {{ size: {len(texts)} }} }} {vals} }}"
    return f"{key} {{ name: {q(name)} op: 'Const' attr {{ key: 'value' value {{ {tensor} }} }} }}"


GRAPH = [
    node("x", "Placeholder", attrs='attr { key: "dtype" value { type: DT_FLOAT } }'),
    node("w", "VarHandleOp"),
    node("w/read", "ReadVariableOp", "w"),
    node("y", "MatMul", "x", "w/read"),
    const("save/Const", "model"),
    const("save/names", "w"),
    const("save/slices", ""),
    node("save/RestoreV2", "RestoreV2", "save/Const", "save/names", "save/slices"),
    node("save/SaveV2", "SaveV2", "save/Const", "save/names", "save/slices", "w"),
]
FUNCTION = """
    function {
      signature { name: "__inference__traced_save_42"
                  input_arg { name: "file_prefix" type: DT_STRING } }
      NODE
      node_def { name: "restore" op: "RestoreV2"
                 input: ["file_prefix", "names:output:0", "names:output:0"] }
      attr { key: "_input_shapes" value { list { shape { unknown_rank: true } } } }
    }
""".replace("NODE", const("names", "w", key="node_def"))


def model(nodes: list[str], functions: str = FUNCTION, tail: str = "") -> bytes:
    body = "\n    ".join(nodes)
    text = f"""# SavedModel exported in text form
saved_model_schema_version: 1
meta_graphs {{
  meta_info_def {{ tags: "serve" tensorflow_version: "2.15.0" any_info {{
      [type.googleapis.com/tensorflow.Example] < features {{ }} > }} }}
  graph_def {{
    {body}
    library {{ {functions} }}
    versions {{ producer: 1395; min_consumer: -12, }}
  }}
  saver_def {{ filename_tensor_name: 'save/Const:0' restore_op_name: "save/restore_all"
              version: V2 keep_checkpoint_every_n_hours: 1e+4 }}
  signature_def {{ key: "serving_default" value {{ method_name: "tensorflow/serving/predict" }} }}
}}
{tail}"""
    return text.encode()


def scan(tmp_path: Path, data: bytes, name: str = "saved_model.pbtxt") -> ScanReport:
    path = tmp_path / name
    path.write_bytes(data)
    (report,) = scan_paths([path])
    assert not any(i.reason.startswith(INTERNAL_ERROR) for i in report.issues), report.issues
    return report


def test_benign_text_saved_model_is_clean(tmp_path: Path) -> None:
    report = scan(tmp_path, model(GRAPH))
    assert report.format == "saved-model-text"
    assert report.clean, report.issues
    # recognised by content, not by name
    assert scan(tmp_path, model(GRAPH), "model.txt").format == "saved-model-text"


@pytest.mark.parametrize(
    ("extra", "op", "rule"),
    [
        (node("evil", "ReadFile", "x"), "ReadFile", "tf-file-op"),
        (node("evil", "WriteFile", "x", "x"), "WriteFile", "tf-file-op"),
        (node("evil", "PyFunc", "x"), "PyFunc", "tf-python-op"),
        (node("evil", "DebugIdentityV2", "x"), "DebugIdentityV2", "tf-file-op"),
        ('node { name: "evil" op: "Read\\x46ile" }', "ReadFile", "tf-file-op"),  # hex escape
        ("node { name: 'evil' op: '\\105agerPyFunc' }", "EagerPyFunc", "tf-python-op"),  # octal
        ('node { name: "evil" op: "Py" "Func" }', "PyFunc", "tf-python-op"),  # concatenated
        ('node < name: "evil" op: "WriteFile" >', "WriteFile", "tf-file-op"),  # angle brackets
        (
            node("evil", "PrintV2", attrs="attr { key: 'output_stream' value { s: 'f:///x' } }"),
            "PrintV2",
            "tf-file-op",
        ),
    ],
)
def test_dangerous_ops_are_found_in_text(tmp_path: Path, extra: str, op: str, rule: str) -> None:
    report = scan(tmp_path, model([*GRAPH, extra]))
    (issue,) = report.issues
    assert issue.rule == rule and issue.verdict is Verdict.DANGEROUS
    assert issue.format == "saved-model-text"
    assert op in issue.reason and "'evil'" in issue.reason


def test_function_library_checkpoint_paths_and_custom_ops(tmp_path: Path) -> None:
    fn = 'function { signature { name: "leaky" input_arg { name: "a" } } '
    fn += 'node_def { name: "evil" op: "WriteFile" input: "a" input: "a" } }'
    report = scan(tmp_path, model(GRAPH, FUNCTION + fn))
    (issue,) = report.issues
    assert issue.rule == "tf-file-op" and "function leaky" in issue.reason
    outside = [const("p", "/etc/", "passwd"), node("evil", "RestoreV2", "p", "save/names", "s")]
    (issue,) = scan(tmp_path, model([*GRAPH, *outside])).issues
    assert issue.rule == "tf-checkpoint-path" and "outside the model directory" in issue.reason
    (issue,) = scan(tmp_path, model([*GRAPH, node("c", "MyKernel", "x")])).issues
    assert issue.verdict is Verdict.SUSPICIOUS and issue.rule == "tf-unknown-op"
    # without the saver, the graph's checkpoint ops do not come from the loader's tensor
    no_saver = model(GRAPH).replace(b"save/Const:0", b"elsewhere:0")
    assert {i.rule for i in scan(tmp_path, no_saver).issues} == {"tf-checkpoint-path"}


def test_a_long_constant_is_not_kept_and_blocks_the_path_check(tmp_path: Path) -> None:
    long = "a" * (1 << 17)
    report = scan(tmp_path, model([*GRAPH, const("p", long), node("evil", "Restore", "p", "n")]))
    (issue,) = report.issues
    assert "too large to check" in issue.reason


def test_tokens_across_chunk_boundaries(tmp_path: Path) -> None:
    rng = random.Random(0)
    pad = [f"# {'x' * rng.randrange(3000)}\n" + node(f"n{i}", "Identity", "x") for i in range(400)]
    report = scan(tmp_path, model([*GRAPH, *pad, node("evil", "ReadFile", "x")]))
    assert [i.rule for i in report.issues] == ["tf-file-op"]


def test_every_meta_graph_is_checked(tmp_path: Path) -> None:
    second = 'meta_graphs { graph_def { node { name: "evil" op: "EagerPyFunc" } } }'
    assert [i.rule for i in scan(tmp_path, model(GRAPH, tail=second)).issues] == ["tf-python-op"]


def broken(report: ScanReport) -> bool:
    return any(i.verdict is Verdict.UNPARSEABLE for i in report.issues)


def test_truncated_text_is_unparseable(tmp_path: Path) -> None:
    data = model(GRAPH)
    end = data.rindex(b"}")
    for cut in range(data.index(b"meta_graphs") + 12, end, max(1, end // 60)):
        assert broken(scan(tmp_path, data[:cut])), data[:cut][-40:]


@pytest.mark.parametrize(
    "bad",
    [
        'node { name: "a" op { } }',  # a message where a string belongs
        'node { name: "a" op: Const }',  # a bare word where a string belongs
        'node { name: "a" op: "Const }',  # unterminated string
        'node { name: "a" op: "Co\nnst" }',  # a string across lines
        'node { name: "a" op: "\\q" }',  # an escape that does not exist
        'node { name: "a" op "Const" }',  # a scalar without its colon
        'node { name: "a" input { x: 1 } }',
        "node { name: 'a' ] }",
        "node { 9name: 'a' }",
        "node " + "{ x " * 150 + "}" * 150,  # nesting past the bound
        "node { [unterminated ",
        'node { name: "' + "n" * (1 << 17) + '" op: "Const" }',  # a name too long to keep
    ],
)
def test_malformed_text_fails_closed(tmp_path: Path, bad: str) -> None:
    report = scan(tmp_path, model([*GRAPH, bad]))
    assert report.format == "saved-model-text" and broken(report)


def test_no_graph_is_unparseable_and_findings_survive_a_broken_tail(tmp_path: Path) -> None:
    assert broken(scan(tmp_path, b"saved_model_schema_version: 1\nmeta_graphs { }\n"))
    report = scan(tmp_path, model([*GRAPH, node("evil", "PyFunc")])[:-3] + b"{{{")
    assert {i.verdict for i in report.issues} == {Verdict.DANGEROUS, Verdict.UNPARSEABLE}


def test_unescape_agrees_with_protobuf_escaping() -> None:
    text_encoding = pytest.importorskip("google.protobuf.text_encoding")
    rng = random.Random(1)
    for _ in range(200):
        raw = bytes(rng.randrange(256) for _ in range(rng.randrange(40)))
        for as_utf8 in (False, True):
            if as_utf8:
                raw = raw.decode("latin-1").encode()
            escaped = text_encoding.CEscape(raw, as_utf8=as_utf8).encode("utf-8")
            assert _unescape(escaped, 0) == raw
