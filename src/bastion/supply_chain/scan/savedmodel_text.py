"""TensorFlow SavedModel in the protobuf text format (``saved_model.pbtxt``), which the loader
accepts in place of ``saved_model.pb``. A small streaming tokenizer and parser for the text
format (neither protobuf nor TensorFlow is imported) keeps what the binary walk keeps: node
names, ops, inputs, short string attributes and string constants of every meta graph and of its
function library, plus the tensors the loader feeds. The same checks as the binary path then
run. Text the parser cannot follow is a finding, never "clean".

Grammar (protobuf text format): message = field*; field = name [":"] ("{" message "}" |
"<" message ">") | name ":" (scalar | "[" value ("," value)* "]"), each optionally followed by
";" or ","; a name is an identifier or a bracketed extension or Any type URL; a scalar is an
identifier, a number or adjacent quoted strings with C escapes.
"""

from __future__ import annotations

import re
from typing import BinaryIO

from bastion.supply_chain.scan.context import Context
from bastion.supply_chain.scan.savedmodel_format import Node, Scope, check_graphs
from bastion.supply_chain.scan.stream import CHUNK, StreamError

__all__ = ["looks_like_saved_model_text", "scan_saved_model_text"]

_FMT = "saved-model-text"
_MAX_WORD = 4096  # identifiers, numbers and bracketed names
_MAX_NAME = 1 << 16  # decoded strings kept; longer ones are not kept
_MAX_DEPTH = 100
_MAX_CONST_STRINGS = 64
_S = "string"  # schema marker: a string scalar

#: message type -> field name -> the field's message type, or `_S` for a string field. Fields
#: outside this table are parsed and dropped.
_SCHEMA: dict[str, dict[str, str]] = {
    "SavedModel": {"meta_graphs": "MetaGraphDef"},
    "MetaGraphDef": {
        "graph_def": "GraphDef",
        "saver_def": "SaverDef",
        "asset_file_def": "AssetFileDef",
    },
    "SaverDef": {"filename_tensor_name": _S},
    "AssetFileDef": {"tensor_info": "TensorInfo"},
    "TensorInfo": {"name": _S},
    "GraphDef": {"node": "NodeDef", "library": "FunctionDefLibrary"},
    "FunctionDefLibrary": {"function": "FunctionDef"},
    "FunctionDef": {"signature": "OpDef", "node_def": "NodeDef"},
    "OpDef": {"name": _S, "input_arg": "ArgDef"},
    "ArgDef": {"name": _S},
    "NodeDef": {"name": _S, "op": _S, "input": _S, "attr": "AttrEntry"},
    "AttrEntry": {"key": _S, "value": "AttrValue"},
    "AttrValue": {"s": _S, "tensor": "TensorProto"},
    "TensorProto": {"string_val": _S},
}

_SPACE = re.compile(rb"[ \t\r\n\f\v]*")
_WORD = re.compile(rb"[A-Za-z0-9_.+\-]*")
_BODY = {
    ord('"'): re.compile(rb'(?:[^"\\\n]|\\[^\n])*'),
    ord("'"): re.compile(rb"(?:[^'\\\n]|\\[^\n])*"),
}
_ESCAPE = re.compile(
    rb"\\(?:([0-7]{1,3})|x([0-9A-Fa-f]{1,2})|u([0-9A-Fa-f]{4})|U([0-9A-Fa-f]{8})|(.))", re.S
)
_SIMPLE_ESCAPES = {
    b"a": b"\a", b"b": b"\b", b"f": b"\f", b"n": b"\n", b"r": b"\r", b"t": b"\t", b"v": b"\v",
    b"\\": b"\\", b"'": b"'", b'"': b'"', b"?": b"?",
}  # fmt: skip

Tree = dict[str, list[object]]


def looks_like_saved_model_text(head: bytes) -> bool:
    """True when ``head`` starts (after blank and ``#`` comment lines) like the text format of
    a SavedModel, which the loader reads from ``saved_model.pbtxt``."""
    for raw in head.splitlines():
        line = raw.strip()
        if line and not line.startswith(b"#"):
            return line.startswith((b"saved_model_schema_version", b"meta_graphs"))
    return False


def _unescape(raw: bytes, at: int) -> bytes:
    def one(m: re.Match[bytes]) -> bytes:
        octal, hex2, u4, u8, simple = m.groups()
        if octal is not None:
            return bytes([int(octal, 8) & 0xFF])
        if hex2 is not None:
            return bytes([int(hex2, 16)])
        if u4 is not None or u8 is not None:
            code = int(u4 or u8, 16)
            if code > 0x10FFFF:
                raise StreamError(f"escape \\U{u8!r} out of range in the string at offset {at}")
            return chr(code).encode("utf-8", "surrogatepass")
        if simple in _SIMPLE_ESCAPES:
            return _SIMPLE_ESCAPES[simple]
        raise StreamError(f"invalid escape \\{simple!r} in the string at offset {at}")

    return _ESCAPE.sub(one, raw) if b"\\" in raw else raw


class _Text:
    """The tokenizer: a window over the file that never holds more than one chunk plus one
    token (strings longer than the kept bound are scanned through, not held)."""

    def __init__(self, f: BinaryIO) -> None:
        self.f, self.buf, self.i, self.base, self.eof = f, b"", 0, 0, False

    @property
    def offset(self) -> int:
        return self.base + self.i

    def _more(self) -> bool:
        if self.eof:
            return False
        chunk = self.f.read(CHUNK)
        if not chunk:
            self.eof = True
            return False
        self.base += self.i
        self.buf, self.i = self.buf[self.i :] + chunk, 0
        return True

    def peek(self) -> int | None:
        """The next non-blank byte, after ``#`` comments; None at the end of the file."""
        while True:
            self.i = _SPACE.match(self.buf, self.i).end()  # type: ignore[union-attr]
            if self.i == len(self.buf):
                if not self._more():
                    return None
                continue
            if self.buf[self.i] != ord("#"):
                return self.buf[self.i]
            while (newline := self.buf.find(b"\n", self.i)) < 0:
                self.i = len(self.buf)
                if not self._more():
                    return None
            self.i = newline + 1

    def expect(self, char: str) -> None:
        if self.peek() != ord(char):
            raise StreamError(f"expected {char!r} at offset {self.offset}")
        self.i += 1

    def word(self) -> str:
        while True:
            end = _WORD.match(self.buf, self.i).end()  # type: ignore[union-attr]
            if end - self.i > _MAX_WORD:
                raise StreamError(f"a word longer than {_MAX_WORD} bytes at offset {self.offset}")
            if end < len(self.buf) or not self._more():
                break
        if end == self.i:
            raise StreamError(f"unexpected {self.buf[self.i : self.i + 1]!r} at {self.offset}")
        text, self.i = self.buf[self.i : end].decode("ascii"), end
        return text

    def bracketed(self) -> str:
        """``[name]`` (an extension or an Any type URL)."""
        self.i += 1
        while (close := self.buf.find(b"]", self.i)) < 0:
            if len(self.buf) - self.i > _MAX_WORD or not self._more():
                raise StreamError(f"unterminated [name] at offset {self.offset}")
        text, self.i = self.buf[self.i : close].decode("utf-8", "replace"), close + 1
        return f"[{text.strip()}]"

    def string(self) -> bytes | None:
        """One or more adjacent quoted strings, decoded; None when longer than kept."""
        parts: list[bytes] = []
        kept, too_long = 0, False
        while (quote := self.peek()) in _BODY:
            start = self.offset
            self.i += 1
            raw: list[bytes] = []
            while True:
                end = _BODY[quote].match(self.buf, self.i).end()  # type: ignore[union-attr]
                if not too_long:
                    raw.append(self.buf[self.i : end])
                    kept += end - self.i
                    too_long = kept > 4 * _MAX_NAME
                self.i = end
                if end + 1 < len(self.buf) or (end < len(self.buf) and self.buf[end] == quote):
                    if self.buf[end] != quote:
                        raise StreamError(f"the string at offset {start} runs past its line")
                    self.i += 1
                    break
                if not self._more():
                    raise StreamError(f"the string at offset {start} is not terminated")
            if not too_long:
                parts.append(_unescape(b"".join(raw), start))
        value = b"".join(parts)
        return None if too_long or len(value) > _MAX_NAME else value


class _Parser:
    def __init__(self, text: _Text) -> None:
        self.t = text

    def message(self, kind: str | None, out: Tree, close: int | None, depth: int) -> None:
        """Parse fields into ``out`` until ``close`` (or the end of the file at the top)."""
        if depth > _MAX_DEPTH:
            raise StreamError(f"messages nested deeper than {_MAX_DEPTH} at {self.t.offset}")
        spec = _SCHEMA.get(kind or "", {})
        while True:
            c = self.t.peek()
            if c is None:
                if close is None:
                    return
                raise StreamError("the text ends inside a message")
            if c == close:
                self.t.i += 1
                return
            name = self.t.bracketed() if c == ord("[") else self.t.word()
            if not (name[0].isalpha() or name[0] in "_["):
                raise StreamError(f"field name {name!r} at offset {self.t.offset}")
            want = spec.get(name)
            colon = self.t.peek() == ord(":")
            if colon:
                self.t.i += 1
            if self.t.peek() == ord("["):
                self.t.i += 1
                while self.t.peek() != ord("]"):
                    self.value(name, want, out, depth)
                    if self.t.peek() == ord(","):
                        self.t.i += 1
                self.t.i += 1
            elif colon or self.t.peek() in (ord("{"), ord("<")):
                self.value(name, want, out, depth)
            else:
                raise StreamError(f"field {name!r} has no value at offset {self.t.offset}")
            if self.t.peek() in (ord(","), ord(";")):
                self.t.i += 1

    def value(self, name: str, want: str | None, out: Tree, depth: int) -> None:
        c, at = self.t.peek(), self.t.offset
        if c in (ord("{"), ord("<")):
            if want == _S:
                raise StreamError(f"field {name!r} at offset {at} is a string, not a message")
            self.t.i += 1
            child: Tree = {}
            if want is not None:
                out.setdefault(name, []).append(child)  # kept before parsing: survives errors
            self.message(want, child, ord("}") if c == ord("{") else ord(">"), depth + 1)
        elif c in _BODY:
            text = self.t.string()
            if want is not None and want != _S:
                raise StreamError(f"field {name!r} at offset {at} is a message, not a string")
            kept = out.setdefault(name, []) if want is not None else []
            if name != "string_val" or len(kept) <= _MAX_CONST_STRINGS:
                kept.append(text)
        elif c is None:
            raise StreamError(f"field {name!r} has no value: the text ends")
        else:
            word = self.t.word()
            if want is not None:
                raise StreamError(f"field {name!r} at offset {at} holds {word!r}, not a {want}")


def _text(value: object, what: str) -> str:
    if not isinstance(value, bytes):
        raise StreamError(f"a {what} longer than {_MAX_NAME} bytes")
    return value.decode("utf-8", "replace")


def _trees(tree: Tree, key: str) -> list[Tree]:
    return [v for v in tree.get(key, []) if isinstance(v, dict)]


def _node(tree: Tree) -> Node:
    names, ops = tree.get("name", []), tree.get("op", [])
    node = Node(_text(names[-1], "node name") if names else "")
    node.op = _text(ops[-1], "op name") if ops else ""
    node.inputs = [_text(i, "node input") for i in tree.get("input", [])]
    for entry in _trees(tree, "attr"):
        keys = entry.get("key", [])
        key = _text(keys[-1], "attribute name") if keys else ""
        for value in _trees(entry, "value"):
            for s in value.get("s", []):
                if isinstance(s, bytes):
                    node.strings[key] = s.decode("utf-8", "replace")
            for tensor in _trees(value, "tensor"):
                consts = tensor.get("string_val", [])
                node.truncated |= len(consts) > _MAX_CONST_STRINGS or None in consts
                node.consts += [c.decode("utf-8", "replace") for c in consts[:_MAX_CONST_STRINGS]
                                if isinstance(c, bytes)]  # fmt: skip
    return node


def _graphs(tree: Tree) -> tuple[list[Scope], set[str], set[str]]:
    scopes: list[Scope] = []
    fed: set[str] = set()
    functions: set[str] = set()
    for meta in _trees(tree, "meta_graphs"):
        for saver in _trees(meta, "saver_def"):
            fed.update(
                _tensor_node(_text(n, "tensor name")) for n in saver.get("filename_tensor_name", [])
            )
        for asset in _trees(meta, "asset_file_def"):
            for info in _trees(asset, "tensor_info"):
                fed.update(_tensor_node(_text(n, "tensor name")) for n in info.get("name", []))
        for graph_def in _trees(meta, "graph_def"):
            graph = Scope("graph")
            scopes.append(graph)
            for node in map(_node, _trees(graph_def, "node")):
                graph.nodes[node.name] = node
            for library in _trees(graph_def, "library"):
                for fn in _trees(library, "function"):
                    scope = Scope("function ?")
                    scopes.append(scope)
                    for signature in _trees(fn, "signature"):
                        for name in signature.get("name", []):
                            scope.where = f"function {_text(name, 'function name')}"
                            functions.add(_text(name, "function name"))
                        for arg in _trees(signature, "input_arg"):
                            scope.args.update(
                                _text(a, "argument name") for a in arg.get("name", [])
                            )
                    for node in map(_node, _trees(fn, "node_def")):
                        scope.nodes[node.name] = node
    return scopes, fed, functions


def _tensor_node(tensor: str) -> str:
    return tensor.lstrip("^").split(":", 1)[0]


def scan_saved_model_text(ctx: Context, f: BinaryIO, size: int, member: str | None) -> str:
    """Parse a text-format SavedModel and run the SavedModel checks on its graphs; text that
    does not parse, or holds no graph, is reported as unparseable (with what was read checked)."""
    f.seek(0)
    tree: Tree = {}
    text = _Text(f)
    try:
        _Parser(text).message("SavedModel", tree, None, 0)
    except (StreamError, UnicodeDecodeError) as exc:
        ctx.unparseable(member, _FMT, f"text protobuf is broken at offset {text.offset}: {exc}")
    try:
        scopes, fed, functions = _graphs(tree)
    except StreamError as exc:
        ctx.unparseable(member, _FMT, f"text protobuf holds {exc}")
        return _FMT
    if not any(s.where == "graph" for s in scopes):
        ctx.unparseable(member, _FMT, "the SavedModel holds no graph")
    check_graphs(ctx, member, scopes, fed, functions, _FMT)
    return _FMT
