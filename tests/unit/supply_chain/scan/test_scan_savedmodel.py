"""TensorFlow SavedModel: detection by content, file-system and Python ops in graphs and function
libraries, checkpoint paths, custom ops, and broken protobufs. The protobufs are written by a
small encoder here, so TensorFlow is never needed."""

from __future__ import annotations

from pathlib import Path

import pytest

from bastion.supply_chain.scan import ScanReport, Verdict, detect_format, scan_paths


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def ld(field: int, payload: bytes | str) -> bytes:
    data = payload.encode() if isinstance(payload, str) else payload
    return varint(field << 3 | 2) + varint(len(data)) + data


def attr(key: str, value: bytes) -> bytes:
    return ld(5, ld(1, key) + ld(2, value))


def const(name: str, *texts: str) -> bytes:
    tensor = varint(1 << 3) + varint(7) + b"".join(ld(8, t) for t in texts)  # dtype=DT_STRING
    return ld(1, name) + ld(2, "Const") + attr("value", ld(8, tensor))


def node(name: str, op: str, *inputs: str, attrs: bytes = b"") -> bytes:
    return ld(1, name) + ld(2, op) + b"".join(ld(3, i) for i in inputs) + attrs


def function(name: str, args: list[str], nodes: list[bytes]) -> bytes:
    signature = ld(1, name) + b"".join(ld(2, ld(1, a)) for a in args)
    return ld(1, signature) + b"".join(ld(3, n) for n in nodes)


def saved_model(
    nodes: list[bytes], functions: tuple[bytes, ...] = (), saver: str | None = "save/Const:0"
) -> bytes:
    graph = b"".join(ld(1, n) for n in nodes)
    if functions:
        graph += ld(2, b"".join(ld(1, f) for f in functions))
    meta = ld(1, ld(4, "serve") + ld(5, "2.15.0")) + ld(2, graph)
    if saver is not None:
        meta += ld(3, ld(1, saver) + ld(2, "save/control_dependency:0"))
    return varint(1 << 3) + varint(1) + ld(2, meta)


BENIGN_GRAPH = [
    node("x", "Placeholder"),
    node("w", "VarHandleOp"),
    node("w/read", "ReadVariableOp", "w"),
    node("mm", "MatMul", "x", "w/read"),
    node("b", "VarHandleOp"),
    node("y", "Add", "mm", "b"),
    const("save/Const", "model"),
    const("save/names", "w", "b"),
    const("save/slices", "", ""),
    node("save/RestoreV2", "RestoreV2", "save/Const", "save/names", "save/slices"),
    node("save/SaveV2", "SaveV2", "save/Const", "save/names", "save/slices", "w", "b"),
    node("call", "StatefulPartitionedCall", "save/Const", attrs=attr("f", ld(10, ld(1, "fn")))),
]
#: TF2 style: the checkpoint ops live in a function whose argument the loader's prefix feeds.
BENIGN_FUNCTION = function(
    "__inference__traced_save_42",
    ["file_prefix"],
    [
        const("suffix", "_temp/part"),
        node("tmp", "StringJoin", "file_prefix", "suffix:output:0"),
        node("shard", "ShardedFilename", "tmp:output:0"),
        const("names", "w"),
        node("save", "SaveV2", "shard:filename:0", "names:output:0", "names:output:0", "^tmp"),
        node("merge", "MergeV2Checkpoints", "shard:filename:0", "file_prefix"),
        node("restore", "RestoreV2", "file_prefix", "names:output:0", "names:output:0"),
    ],
)


def scan(tmp_path: Path, data: bytes, name: str = "saved_model.pb") -> ScanReport:
    path = tmp_path / name
    path.write_bytes(data)
    (report,) = scan_paths([path])
    return report


def test_benign_saved_model_is_clean(tmp_path: Path) -> None:
    report = scan(tmp_path, saved_model(BENIGN_GRAPH, (BENIGN_FUNCTION,)))
    assert report.format == "saved-model"
    assert report.clean, report.issues


def test_a_saved_model_directory_is_recognised_by_content(tmp_path: Path) -> None:
    (tmp_path / "variables").mkdir()
    (tmp_path / "variables" / "variables.index").write_bytes(b"\x00" * 32)
    (tmp_path / "variables" / "variables.data-00000-of-00001").write_bytes(b"\x01" * 64)
    (tmp_path / "saved_model.pb").write_bytes(saved_model([*BENIGN_GRAPH, node("r", "ReadFile")]))
    formats = {Path(r.path).name: r for r in scan_paths([tmp_path])}
    assert formats["saved_model.pb"].format == "saved-model"
    assert formats["saved_model.pb"].worst is Verdict.DANGEROUS
    # content, not names: the same bytes under another name are the same model
    assert scan(tmp_path, saved_model(BENIGN_GRAPH), "weights.bin").format == "saved-model"


@pytest.mark.parametrize(
    ("extra", "op", "rule"),
    [
        (node("evil", "ReadFile", "x"), "ReadFile", "tf-file-op"),
        (node("evil", "WriteFile", "x", "y"), "WriteFile", "tf-file-op"),
        (node("evil", "MatchingFiles", "x"), "MatchingFiles", "tf-file-op"),
        (node("evil", "ImmutableConst"), "ImmutableConst", "tf-file-op"),
        (node("evil", "LoadAndRemapMatrix", "x"), "LoadAndRemapMatrix", "tf-file-op"),
        (node("evil", "DebugIdentityV2", "y"), "DebugIdentityV2", "tf-file-op"),
        (node("evil", "DebugIdentityV3", "y"), "DebugIdentityV3", "tf-file-op"),
        (node("evil", "PyFunc", "x"), "PyFunc", "tf-python-op"),
        (node("evil", "PyFuncStateless", "x"), "PyFuncStateless", "tf-python-op"),
        (node("evil", "EagerPyFunc", "x"), "EagerPyFunc", "tf-python-op"),
        (
            node("evil", "PrintV2", "x", attrs=attr("output_stream", ld(2, "file:///tmp/leak"))),
            "PrintV2",
            "tf-file-op",
        ),
    ],
)
def test_dangerous_ops_are_named_with_their_node(
    tmp_path: Path, extra: bytes, op: str, rule: str
) -> None:
    report = scan(tmp_path, saved_model([*BENIGN_GRAPH, extra]))
    assert report.worst is Verdict.DANGEROUS
    (issue,) = report.issues
    assert issue.rule == rule and issue.format == "saved-model"
    assert op in issue.reason and "'evil'" in issue.reason


def test_print_to_a_standard_stream_is_not_a_finding(tmp_path: Path) -> None:
    printer = node("p", "PrintV2", "x", attrs=attr("output_stream", ld(2, "stderr")))
    assert scan(tmp_path, saved_model([*BENIGN_GRAPH, printer])).clean


def test_dangerous_op_inside_the_function_library(tmp_path: Path) -> None:
    fn = function("__inference_call_7", ["inp"], [node("leak", "WriteFile", "inp", "inp")])
    report = scan(tmp_path, saved_model(BENIGN_GRAPH, (BENIGN_FUNCTION, fn)))
    (issue,) = report.issues
    assert issue.rule == "tf-file-op"
    assert "'leak'" in issue.reason and "function __inference_call_7" in issue.reason


@pytest.mark.parametrize(
    ("extra", "why"),
    [
        (
            [
                const("p", "/etc/passwd"),
                node("evil", "RestoreV2", "p", "save/names", "save/slices"),
            ],
            "outside the model directory",
        ),
        (
            [
                const("up", "../../../home/user/.ssh/x"),
                node("j", "StringJoin", "save/Const", "up"),
                node("evil", "SaveV2", "j", "save/names", "save/slices", "w"),
            ],
            "outside the model directory",
        ),
        (
            [const("p", "gs://bucket/ckpt"), node("evil", "MergeV2Checkpoints", "save/Const", "p")],
            "outside the model directory",
        ),
        (
            [const("p", "elsewhere"), node("evil", "Restore", "p", "save/names")],
            "does not come from the tensor the loader feeds",
        ),
        ([node("evil", "RestoreV2")], "path input is missing"),
        (
            [node("evil", "InitializeTableFromTextFileV2", "t", "ghost")],
            "not in the graph",
        ),
    ],
)
def test_checkpoint_ops_outside_the_expected_path(
    tmp_path: Path, extra: list[bytes], why: str
) -> None:
    report = scan(tmp_path, saved_model([*BENIGN_GRAPH, *extra]))
    (issue,) = report.issues
    assert issue.rule == "tf-checkpoint-path" and issue.verdict is Verdict.DANGEROUS
    assert why in issue.reason and "'evil'" in issue.reason


def test_checkpoint_ops_without_a_saver_are_flagged(tmp_path: Path) -> None:
    report = scan(tmp_path, saved_model(BENIGN_GRAPH, saver=None))
    assert {i.rule for i in report.issues} == {"tf-checkpoint-path"}
    assert len(report.issues) == 2  # the graph's RestoreV2 and SaveV2


def test_custom_ops_are_suspicious_but_library_functions_are_not(tmp_path: Path) -> None:
    report = scan(tmp_path, saved_model([*BENIGN_GRAPH, node("c", "MyCustomKernel", "x")]))
    (issue,) = report.issues
    assert issue.verdict is Verdict.SUSPICIOUS and issue.rule == "tf-unknown-op"
    assert "MyCustomKernel" in issue.reason
    by_name = saved_model([*BENIGN_GRAPH, node("c", "my_fn", "x")], (function("my_fn", [], []),))
    assert scan(tmp_path, by_name).clean


def unparseable(report: ScanReport) -> bool:
    return any(i.verdict is Verdict.UNPARSEABLE for i in report.issues)


def test_broken_protobufs_are_unparseable(tmp_path: Path) -> None:
    data = saved_model(BENIGN_GRAPH, (BENIGN_FUNCTION,))
    for cut in range(8, len(data), max(1, len(data) // 40)):
        report = scan(tmp_path, data[:cut])
        assert report.format == "saved-model", cut
        assert unparseable(report), cut
    # a wire type no TensorFlow proto uses (a group), inside the graph
    assert unparseable(scan(tmp_path, saved_model([*BENIGN_GRAPH, b"\x0b\x0c"])))
    # an op name sent as a varint instead of a string
    assert unparseable(scan(tmp_path, saved_model([b"\x0a\x01n\x10\x05"])))
    # no graph at all
    assert unparseable(scan(tmp_path, varint(8) + varint(1) + ld(2, ld(1, ld(4, "serve")))))


def test_findings_survive_a_broken_tail(tmp_path: Path) -> None:
    data = saved_model([*BENIGN_GRAPH, node("evil", "PyFunc")])
    report = scan(tmp_path, data + b"\x12\x7f")
    assert {i.verdict for i in report.issues} == {Verdict.DANGEROUS, Verdict.UNPARSEABLE}


def test_onnx_heads_stay_onnx() -> None:
    model = saved_model(BENIGN_GRAPH)
    assert detect_format(model[:1024], len(model)) == "saved-model"
    onnx_head = varint(8) + varint(8) + ld(2, "pytorch") + ld(3, "2.1.0") + ld(7, b"\x0a\x00")
    assert detect_format(onnx_head, len(onnx_head)) == "onnx"
    no_producer = varint(8) + varint(7) + ld(7, ld(1, b""))
    assert detect_format(no_producer, len(no_producer)) == "onnx"


def test_polyglot_is_also_checked_as_onnx(tmp_path: Path) -> None:
    location = ld(1, "location") + ld(2, "../../etc/passwd")
    tensor = ld(8, "t") + ld(13, location) + varint(14 << 3) + varint(1)
    data = saved_model(BENIGN_GRAPH) + ld(7, ld(5, tensor))  # ONNX ModelProto.graph.initializer
    rules = {i.rule for i in scan(tmp_path, data).issues}
    assert "onnx-external-data" in rules


def test_every_meta_graph_is_walked_and_the_version_is_optional(tmp_path: Path) -> None:
    second = ld(2, ld(2, ld(1, node("evil", "EagerPyFunc"))))
    report = scan(tmp_path, saved_model(BENIGN_GRAPH) + second)
    assert [i.rule for i in report.issues] == ["tf-python-op"]
    without_version = saved_model([node("evil", "WriteFile")], saver=None)[2:]
    assert without_version[:1] == b"\x12"
    report = scan(tmp_path, without_version)
    assert report.format == "saved-model" and report.worst is Verdict.DANGEROUS
