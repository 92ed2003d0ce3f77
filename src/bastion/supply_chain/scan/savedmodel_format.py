"""TensorFlow SavedModel (``saved_model.pb``), read by walking the protobuf wire format directly
(TensorFlow is never imported): every node of every meta graph and of its function library is
checked for ops that touch the file system or run Python, checkpoint and vocabulary ops whose
path does not come from the loader, and ops outside the standard set (custom native kernels).

Schema (tensorflow/core/protobuf/saved_model.proto and friends): SavedModel = {1: schema
version, 2: MetaGraphDef*}; MetaGraphDef = {2: GraphDef, 3: SaverDef, 6: AssetFileDef*};
GraphDef = {1: NodeDef*, 2: FunctionDefLibrary}; FunctionDefLibrary = {1: FunctionDef*};
FunctionDef = {1: OpDef signature, 3: NodeDef*}; NodeDef = {1: name, 2: op, 3: input*, 5: attr}.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from bastion.supply_chain.scan.context import Context
from bastion.supply_chain.scan.interface import Verdict
from bastion.supply_chain.scan.onnx_format import _varint, scan_onnx
from bastion.supply_chain.scan.stream import Reader, StreamError
from bastion.supply_chain.scan.tf_ops import (
    CODE_OPS,
    DEBUG_OPS,
    FILE_OPS,
    KNOWN_OPS,
    PATH_OPS,
    PRINT_STREAMS,
)

__all__ = ["Node", "Scope", "check_graphs", "looks_like_saved_model", "scan_saved_model"]

_FMT = "saved-model"
_META_GRAPH_TAGS = {0x0A, 0x12, 0x1A, 0x22, 0x2A, 0x32, 0x3A}
_MAX_NAME = 1 << 16
_MAX_CONST_STRINGS = 64
_MAX_TRACE = 10_000


def _head_varint(head: bytes, at: int) -> tuple[int, int] | None:
    value, shift = 0, 0
    while at < len(head) and shift <= 63:
        byte = head[at]
        value |= (byte & 0x7F) << shift
        at += 1
        if not byte & 0x80:
            return value, at
        shift += 7
    return None


def looks_like_saved_model(head: bytes, size: int) -> bool:
    """True when ``head`` is a SavedModel: an optional schema version (field 1), then a meta
    graph (field 2) whose first field is a length-delimited MetaGraphDef field that fits inside
    it; without the version, the meta graph must also fit in the file's ``size``.

    ONNX also starts with a varint field 1 and often a field 2, but its field 2 is the producer
    name (text), which does not start with a MetaGraphDef tag.
    """
    at = 0
    if head[:1] == b"\x08":  # the loader does not require the version, so neither do we
        version = _head_varint(head, 1)
        if version is None:
            return False
        at = version[1]
    if at >= len(head) or head[at] != 0x12:
        return False
    length = _head_varint(head, at + 1)
    if length is None or length[1] >= len(head):
        return False
    if at == 0 and length[1] + length[0] > size:  # no version: ask for more evidence
        return False
    if head[length[1]] not in _META_GRAPH_TAGS:
        return False
    inner = _head_varint(head, length[1] + 1)
    return inner is not None and inner[0] + inner[1] - length[1] <= length[0]


@dataclass
class Node:
    """What the checks need of one NodeDef."""

    name: str
    op: str = ""
    inputs: list[str] = field(default_factory=list)
    strings: dict[str, str] = field(default_factory=dict)  # attr name -> string value
    consts: list[str] = field(default_factory=list)  # string_val of a tensor attribute
    truncated: bool = False


@dataclass
class Scope:
    """A graph or one function of its library: its nodes by name and its argument names."""

    where: str  # "graph" or "function NAME"
    nodes: dict[str, Node] = field(default_factory=dict)
    args: set[str] = field(default_factory=set)


class _Walk:
    """Streams the protobuf, keeping only names, ops, inputs and short string attributes."""

    def __init__(self, reader: Reader) -> None:
        self.r = reader
        self.scopes: list[Scope] = []
        self.functions: set[str] = set()
        self.fed: set[str] = set()  # node names the loader feeds: saver filename, assets

    def fields(self, end: int) -> Iterator[tuple[int, int, int]]:
        """Yield (field, wire type, varint value or end offset of a length-delimited value);
        an unread length-delimited value is skipped after the consumer returns."""
        while self.r.offset < end:
            tag = _varint(self.r)
            number, wire = tag >> 3, tag & 7
            if number == 0:
                raise StreamError(f"field number 0 at offset {self.r.offset}")
            if wire == 0:
                yield number, 0, _varint(self.r)
            elif wire in (1, 5):
                self.r.skip(8 if wire == 1 else 4)
            elif wire == 2:
                length = _varint(self.r)
                stop = self.r.offset + length
                if stop > end:
                    raise StreamError(f"field {number} at offset {self.r.offset} runs past its end")
                yield number, 2, stop
                if self.r.offset > stop:
                    raise StreamError(f"field {number} overruns its length")
                self.r.skip(stop - self.r.offset)
            else:
                raise StreamError(f"wire type {wire} at offset {self.r.offset}")
        if self.r.offset != end:
            raise StreamError(f"message overruns its length at offset {self.r.offset}")

    def text(self, wire: int, stop: int) -> str:
        if wire != 2:
            raise StreamError(f"a string field has wire type {wire}")
        length = stop - self.r.offset
        if length > _MAX_NAME:
            raise StreamError(f"a name of {length} bytes at offset {self.r.offset}")
        return self.r.read(length).decode("utf-8", "replace")

    def sub(self, wire: int) -> None:
        if wire != 2:
            raise StreamError(f"a message field has wire type {wire}")

    def saved_model(self, end: int) -> None:
        for number, wire, value in self.fields(end):
            if number == 2:
                self.sub(wire)
                self.meta_graph(value)

    def meta_graph(self, end: int) -> None:
        for number, wire, value in self.fields(end):
            if number == 2:
                self.sub(wire)
                self.graph_def(value)
            elif number in (3, 6):  # SaverDef.filename_tensor_name, AssetFileDef.tensor_info
                self.sub(wire)
                self.fed_tensor(value, nested=number == 6)

    def fed_tensor(self, end: int, *, nested: bool) -> None:
        for number, wire, value in self.fields(end):
            if number == 1 and nested:
                self.sub(wire)
                self.fed_tensor(value, nested=False)
            elif number == 1:
                self.fed.add(_node_name(self.text(wire, value)))

    def graph_def(self, end: int) -> None:
        graph = Scope("graph")
        self.scopes.append(graph)
        for number, wire, value in self.fields(end):
            if number == 1:
                self.sub(wire)
                node = self.node(value)
                graph.nodes[node.name] = node
            elif number == 2:
                self.sub(wire)
                for n, w, v in self.fields(value):
                    if n == 1:
                        self.sub(w)
                        self.function(v)

    def function(self, end: int) -> None:
        scope = Scope("function ?")
        self.scopes.append(scope)
        for number, wire, value in self.fields(end):
            if number == 1:  # OpDef signature: name=1, input_arg=2 (ArgDef name=1)
                self.sub(wire)
                for n, w, v in self.fields(value):
                    if n == 1:
                        name = self.text(w, v)
                        scope.where = f"function {name}"
                        self.functions.add(name)
                    elif n == 2:
                        self.sub(w)
                        scope.args.update(
                            self.text(w2, v2) for n2, w2, v2 in self.fields(v) if n2 == 1
                        )
            elif number == 3:
                self.sub(wire)
                node = self.node(value)
                scope.nodes[node.name] = node

    def node(self, end: int) -> Node:
        node = Node("")
        for number, wire, value in self.fields(end):
            if number == 1:
                node.name = self.text(wire, value)
            elif number == 2:
                node.op = self.text(wire, value)
            elif number == 3:
                node.inputs.append(self.text(wire, value))
            elif number == 5:
                self.sub(wire)
                self.attr(node, value)
        return node

    def attr(self, node: Node, end: int) -> None:
        key = ""
        for number, wire, value in self.fields(end):
            if number == 1:
                key = self.text(wire, value)
            elif number == 2:  # AttrValue: list=1, s=2, tensor=8, func=10
                self.sub(wire)
                for n, w, v in self.fields(value):
                    if n == 2 and v - self.r.offset <= _MAX_NAME:
                        node.strings[key] = self.text(w, v)
                    elif n == 8:
                        self.sub(w)
                        self.tensor(node, v)

    def tensor(self, node: Node, end: int) -> None:
        for number, wire, value in self.fields(end):
            if number == 8:  # string_val
                if len(node.consts) < _MAX_CONST_STRINGS and value - self.r.offset <= _MAX_NAME:
                    node.consts.append(self.text(wire, value))
                else:
                    node.truncated = True


def _node_name(tensor: str) -> str:
    """``^name``, ``name:0`` or ``name:output:0`` -> ``name``."""
    return tensor.lstrip("^").split(":", 1)[0]


def _escapes(path: str) -> bool:
    """True for a path that leaves the model directory or names another file system."""
    norm = path.replace("\\", "/")
    return (
        norm.startswith("/")
        or (len(norm) > 1 and norm[1] == ":")
        or "://" in norm
        or ".." in norm.split("/")
    )


def _path_problem(scope: Scope, fed: set[str], node: Node) -> str | None:
    """Why the path inputs of a checkpoint/vocabulary op are not the loader's, or None."""
    data_inputs = [i for i in node.inputs if not i.startswith("^")]
    todo = [_node_name(data_inputs[k]) for k in PATH_OPS[node.op] if k < len(data_inputs)]
    if len(todo) < len(PATH_OPS[node.op]):
        return "its path input is missing"
    seen: set[str] = set()
    reaches_loader = False
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        if len(seen) > _MAX_TRACE:
            return "its path comes through too many nodes to trace"
        if (scope.where == "graph" and name in fed) or name in scope.args:
            reaches_loader = True
            continue
        source = scope.nodes.get(name)
        if source is None:
            return f"its path comes from {name!r}, which is not in the {scope.where}"
        if source.truncated:
            return f"its path comes from constant {name!r}, too large to check"
        for text in source.consts:
            if _escapes(text):
                return f"its path includes {text!r}, outside the model directory"
        todo.extend(_node_name(i) for i in source.inputs if not i.startswith("^"))
    if not reaches_loader:
        return "its path does not come from the tensor the loader feeds with the model directory"
    return None


def check_graphs(
    ctx: Context,
    member: str | None,
    scopes: list[Scope],
    fed: set[str],
    functions: set[str],
    fmt: str = _FMT,
) -> None:
    """Report the file-system, Python, checkpoint-path and unknown ops of every scope; ``fed``
    names the nodes the loader feeds, ``functions`` the library's function names."""

    def add(verdict: Verdict, rule: str, reason: str) -> None:
        ctx.sink.add(member, fmt, verdict, rule, reason)

    for scope in scopes:
        for node in scope.nodes.values():
            op, at = node.op, f"node {node.name!r} in the {scope.where}"
            if op in CODE_OPS:
                add(Verdict.DANGEROUS, "tf-python-op", f"{op} at {at} runs a Python function")
            elif op in FILE_OPS:
                add(Verdict.DANGEROUS, "tf-file-op", f"{op} at {at} {FILE_OPS[op]}")
            elif op in DEBUG_OPS:
                add(Verdict.DANGEROUS, "tf-file-op", f"{op} at {at} can write tensor dumps")
            elif (
                op == "PrintV2" and node.strings.get("output_stream", "stderr") not in PRINT_STREAMS
            ):
                stream = node.strings["output_stream"]
                add(Verdict.DANGEROUS, "tf-file-op", f"PrintV2 at {at} writes to {stream!r}")
            elif op in PATH_OPS:
                problem = _path_problem(scope, fed, node)
                if problem is not None:
                    add(Verdict.DANGEROUS, "tf-checkpoint-path", f"{op} at {at}: {problem}")
            elif op not in KNOWN_OPS and op not in functions:
                add(
                    Verdict.SUSPICIOUS,
                    "tf-unknown-op",
                    f"{op!r} at {at} is not a standard op (needs a custom native kernel)",
                )


def scan_saved_model(ctx: Context, f: BinaryIO, size: int, member: str | None) -> str:
    """Walk a SavedModel protobuf and report file-system, Python and unknown ops.

    The file is also walked as ONNX: a polyglot that a SavedModel loader and an ONNX loader
    would both accept is checked for what either would do.
    """
    f.seek(0)
    walk = _Walk(Reader(f))
    try:
        walk.saved_model(size)
    except StreamError as exc:
        ctx.unparseable(member, _FMT, f"protobuf is broken: {exc}")
    else:
        if not any(s.where == "graph" for s in walk.scopes):
            ctx.unparseable(member, _FMT, "the SavedModel holds no graph")
    check_graphs(ctx, member, walk.scopes, walk.fed, walk.functions)
    scan_onnx(ctx, f, size, member)
    return _FMT
