"""Where a value in Python source comes from: outside the program, bundled with it, or unknown.

A small, flow-insensitive data-flow analysis over one module's `ast` (never imported or run),
used to grade the unsafe-load findings of `bastion.supply_chain.audit.patterns`. A value comes
from *outside* when it derives from the command line (``sys.argv``, ``argparse``), standard
input, the environment, an HTTP request, a download, or a parameter of a CLI or web entry point;
it is *bundled* when it is built only from literals and the module's own location
(``__file__``, ``importlib.resources``). Values flow through assignments (including tuple
unpacking, ``for`` and ``with`` targets and ``:=``), through path-building expressions (joins,
f-strings, ``Path(...)``, method calls on a derived value, ``open(...)``), and into function
parameters from every call site in the same module. Anything else is *unknown*, which leaves a
finding's severity as the rule set it.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from bastion.supply_chain.audit.sources import (
    ARG_PARSERS,
    BUNDLED_CALLS,
    ENTRY_DECORATORS,
    PATH_BUILDERS,
    REQUEST_TYPES,
    SOURCE_CALLS,
    SOURCE_MODULES,
    SOURCE_NAMES,
)

__all__ = ["BUNDLED", "OUTSIDE", "UNKNOWN", "Flow", "Origin"]

OUTSIDE, UNKNOWN, BUNDLED = "outside", "unknown", "bundled"
_RANK = {BUNDLED: 0, UNKNOWN: 1, OUTSIDE: 2}
_MAX_DEPTH = 24


Scope = ast.Module | ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda


@dataclass(frozen=True)
class Origin:
    """Where a value comes from.

    Attributes:
        kind: `OUTSIDE`, `BUNDLED` or `UNKNOWN`.
        what: a description of the source, e.g. ``"the command line (sys.argv) (line 12)"``.
    """

    kind: str
    what: str

    def worse(self, other: Origin) -> Origin:
        """The more dangerous of the two (the first on a tie)."""
        return other if _RANK[other.kind] > _RANK[self.kind] else self


_UNKNOWN = Origin(UNKNOWN, "an unknown source")
_LITERAL = Origin(BUNDLED, "a literal path")


@dataclass
class _ScopeInfo:
    node: Scope
    parent: _ScopeInfo | None
    assigned: dict[str, list[ast.expr]] = field(default_factory=dict)
    params: list[str] = field(default_factory=list)
    defaults: dict[str, ast.expr] = field(default_factory=dict)
    returns: list[ast.expr] = field(default_factory=list)
    method: bool = False


class Flow:
    """The origins of values in one parsed module.

    Args:
        tree: the module's syntax tree.
        qualify: resolves a name or attribute chain to its fully qualified name through the
            module's imports (None when it is not a plain chain).
        on_import: called with every import statement of the module while it is indexed (so
            that ``qualify`` knows them all before the first query).
    """

    def __init__(
        self,
        tree: ast.Module,
        qualify: Callable[[ast.expr], str | None],
        on_import: Callable[[ast.Import | ast.ImportFrom], None] | None = None,
    ) -> None:
        self._qualify = qualify
        self._on_import = on_import
        self._scopes: dict[ast.AST, _ScopeInfo] = {}
        self._functions: dict[str, list[_ScopeInfo]] = {}
        self._calls: list[tuple[ast.Call, _ScopeInfo]] = []
        self._imported: set[str] = set()  # local names bound by imports
        self._index(tree, None)

    # -- indexing ------------------------------------------------------------------------
    def _index(self, node: Scope, parent: _ScopeInfo | None, method: bool = False) -> None:
        info = _ScopeInfo(node, parent, method=method)
        self._scopes[node] = info
        if not isinstance(node, ast.Module):
            args = node.args
            positional = [*args.posonlyargs, *args.args]
            info.params = [a.arg for a in (*positional, *args.kwonlyargs)]
            for a, d in zip(
                positional[len(positional) - len(args.defaults) :], args.defaults, strict=True
            ):
                info.defaults[a.arg] = d
            for a, kd in zip(args.kwonlyargs, args.kw_defaults, strict=True):
                if kd is not None:
                    info.defaults[a.arg] = kd
            for star in (args.vararg, args.kwarg):
                if star is not None:
                    info.params.append(star.arg)
            if not isinstance(node, ast.Lambda):
                self._functions.setdefault(node.name, []).append(info)
        body = [node.body] if isinstance(node, ast.Lambda) else node.body
        for child in _own_nodes(body):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                self._index(child, info)
            elif isinstance(child, ast.ClassDef):
                for item in child.body:
                    if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                        self._index(item, info, method=not _is_static(item))
            else:
                self._record(child, info)

    def _record(self, node: ast.AST, info: _ScopeInfo) -> None:
        if isinstance(node, ast.Import | ast.ImportFrom):
            self._imported.update((a.asname or a.name).split(".")[0] for a in node.names)
            if self._on_import is not None:
                self._on_import(node)
        elif isinstance(node, ast.Call):
            self._calls.append((node, info))
        elif isinstance(node, ast.Return) and node.value is not None:
            info.returns.append(node.value)
        pairs: list[tuple[ast.expr, ast.expr]] = []
        if isinstance(node, ast.Assign):
            pairs = [(t, node.value) for t in node.targets]
        elif isinstance(node, ast.AnnAssign | ast.AugAssign | ast.NamedExpr) and node.value:
            pairs = [(node.target, node.value)]
        elif isinstance(node, ast.For | ast.AsyncFor | ast.comprehension):
            pairs = [(node.target, node.iter)]
        elif isinstance(node, ast.withitem) and node.optional_vars is not None:
            pairs = [(node.optional_vars, node.context_expr)]
        for target, value in pairs:
            for name, expr in _bind(target, value):
                info.assigned.setdefault(name, []).append(expr)

    # -- queries -------------------------------------------------------------------------
    def origin(self, expr: ast.expr, scope: ast.AST) -> Origin:
        """Where ``expr``, evaluated in ``scope`` (a module, function or lambda node), comes
        from."""
        info = self._scopes.get(scope)
        if info is None:
            return _UNKNOWN
        return self._expr(expr, info, 0, set())

    def _expr(self, e: ast.expr, info: _ScopeInfo, depth: int, seen: set[object]) -> Origin:
        if depth > _MAX_DEPTH:
            return _UNKNOWN
        depth += 1
        if isinstance(e, ast.Constant):
            return _LITERAL
        qualified = self._qualify(e) if isinstance(e, ast.Name | ast.Attribute) else None
        if qualified is not None:
            source = _source_name(qualified)
            if source is not None:
                return Origin(OUTSIDE, f"{source} (line {e.lineno})")
        if isinstance(e, ast.Name):
            if e.id == "__file__":
                return Origin(BUNDLED, "the module's own location (__file__)")
            return self._name(e.id, info, depth, seen)
        if isinstance(e, ast.Attribute | ast.Subscript | ast.Starred | ast.Await):
            return self._expr(e.value, info, depth, seen)
        if isinstance(e, ast.Call):
            return self._call(e, info, depth, seen)
        if isinstance(e, ast.NamedExpr):
            return self._expr(e.value, info, depth, seen)
        parts = list(_parts(e))
        if not parts:
            return _UNKNOWN
        worst = _LITERAL
        for part in parts:
            worst = worst.worse(self._expr(part, info, depth, seen))
        return worst

    def _name(self, name: str, info: _ScopeInfo, depth: int, seen: set[object]) -> Origin:
        scope: _ScopeInfo | None = info
        while scope is not None:
            key = (id(scope.node), name)
            if name in scope.assigned:
                if key in seen:
                    return _LITERAL  # a cycle adds nothing new
                seen.add(key)
                worst = _LITERAL
                for value in scope.assigned[name]:
                    worst = worst.worse(self._expr(value, scope, depth, seen))
                return worst
            if name in scope.params:
                if key in seen:
                    return _LITERAL
                seen.add(key)
                return self._param(name, scope, depth, seen)
            scope = scope.parent
        return _UNKNOWN

    def _param(self, name: str, info: _ScopeInfo, depth: int, seen: set[object]) -> Origin:
        fn = info.node
        if isinstance(fn, ast.Module | ast.Lambda):
            return _UNKNOWN
        for deco in fn.decorator_list:
            target = deco.func if isinstance(deco, ast.Call) else deco
            if isinstance(target, ast.Attribute) and target.attr in ENTRY_DECORATORS:
                return Origin(OUTSIDE, f"parameter {name!r} of entry point {fn.name}()")
        arg = next((a for a in (*fn.args.args, *fn.args.kwonlyargs) if a.arg == name), None)
        if arg is not None and arg.annotation is not None:
            annotation = self._qualify(arg.annotation) or ""
            if annotation.startswith(("fastapi.", "starlette.")) and annotation.endswith(
                REQUEST_TYPES
            ):
                return Origin(OUTSIDE, f"parameter {name!r} of request handler {fn.name}()")
        worst, sites = _UNKNOWN, 0
        for call, caller in self._calls:
            if not self._calls_function(call, fn.name, info):
                continue
            value = _argument(call, fn, name, info.method)
            if value is None:
                continue
            sites += 1
            if value is _DEFAULT:
                default = info.defaults.get(name)
                outer = info.parent or info
                found = _LITERAL if default is None else self._expr(default, outer, depth, seen)
            else:
                found = self._expr(value, caller, depth, seen)
            if found.kind == OUTSIDE:
                found = Origin(
                    OUTSIDE, f"{found.what}, passed to {fn.name}() at line {call.lineno}"
                )
            worst = found if sites == 1 else worst.worse(found)
        if sites == 0:
            return Origin(UNKNOWN, f"parameter {name!r} of {fn.name}(), not called in this module")
        return worst

    def _calls_function(self, call: ast.Call, name: str, info: _ScopeInfo) -> bool:
        """Whether ``call`` calls the function of ``info``: by name for a function; through
        ``self``/``cls`` or a local object (not an imported module) for a method."""
        func = call.func
        if isinstance(func, ast.Name):
            return func.id == name and not info.method
        if not (isinstance(func, ast.Attribute) and func.attr == name and info.method):
            return False
        return not self._module_function(func)

    def _returned(self, name: str, depth: int, seen: set[object]) -> Origin | None:
        """What a module-local function returns (the worst over its return statements)."""
        functions = [f for f in self._functions.get(name, []) if not f.method]
        if not functions or ("returns", name) in seen:
            return None
        seen.add(("returns", name))
        worst: Origin | None = None
        for info in functions:
            for value in info.returns:
                found = self._expr(value, info, depth, seen)
                worst = found if worst is None else worst.worse(found)
        return worst

    def _call(self, e: ast.Call, info: _ScopeInfo, depth: int, seen: set[object]) -> Origin:
        qualified = self._qualify(e.func) or ""
        if qualified in SOURCE_CALLS:
            return Origin(OUTSIDE, f"{SOURCE_CALLS[qualified]} (line {e.lineno})")
        source = _source_name(qualified)  # os.environ.get(...), flask.request.get_data()
        if source is not None:
            return Origin(OUTSIDE, f"{source} (line {e.lineno})")
        if qualified.split(".")[0] in SOURCE_MODULES:
            return Origin(OUTSIDE, f"{SOURCE_MODULES[qualified.split('.')[0]]} (line {e.lineno})")
        if qualified in BUNDLED_CALLS:
            return Origin(BUNDLED, f"a file shipped with the package ({qualified})")
        if isinstance(e.func, ast.Attribute) and e.func.attr in ARG_PARSERS:
            return Origin(OUTSIDE, f"the command line ({e.func.attr}, line {e.lineno})")
        if isinstance(e.func, ast.Name) and e.func.id in self._functions:
            returned = self._returned(e.func.id, depth, seen)
            return returned if returned is not None else _UNKNOWN
        worst = _LITERAL
        inputs = [*e.args, *(k.value for k in e.keywords)]
        if isinstance(e.func, ast.Attribute) and not self._module_function(e.func):
            inputs.insert(0, e.func.value)  # a method of a derived value: Path(p).read_bytes()
        for value in inputs:
            worst = worst.worse(self._expr(value, info, depth, seen))
        if worst.kind == BUNDLED and not (inputs and self._path_builder(qualified, e.func)):
            return _UNKNOWN  # a function we do not know, given only literals
        return worst

    def _path_builder(self, qualified: str, func: ast.expr) -> bool:
        """Whether a call builds its result from its inputs: path and string functions, and
        methods of local values (not functions of imported modules we do not know)."""
        if qualified in PATH_BUILDERS or qualified.startswith(("os.path.", "posixpath.")):
            return True
        if self._module_function(func):
            return qualified.startswith("pathlib.")
        return isinstance(func, ast.Attribute)

    def _module_function(self, func: ast.expr) -> bool:
        """Whether ``func`` is reached from an imported module (not a local value)."""
        root = func
        while isinstance(root, ast.Attribute | ast.Call | ast.Subscript):
            root = root.func if isinstance(root, ast.Call) else root.value
        return isinstance(root, ast.Name) and root.id in self._imported


_DEFAULT = ast.Constant(value=None)


def _argument(call: ast.Call, fn: ast.FunctionDef | ast.AsyncFunctionDef, name: str,
              skip_self: bool) -> ast.expr | None:  # fmt: skip
    """The expression ``call`` passes for parameter ``name`` (`_DEFAULT` when it is left to the
    default), or None when it cannot be told (``*args``/``**kwargs``)."""
    for kw in call.keywords:
        if kw.arg == name:
            return kw.value
    positional = [a.arg for a in (*fn.args.posonlyargs, *fn.args.args)]
    if skip_self and positional:
        positional = positional[1:]
    if name in positional:
        index = positional.index(name)
        if any(isinstance(a, ast.Starred) for a in call.args[: index + 1]):
            return None
        if index < len(call.args):
            return call.args[index]
    if any(kw.arg is None for kw in call.keywords):
        return None
    return _DEFAULT


def _is_static(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    return any(isinstance(d, ast.Name) and d.id == "staticmethod" for d in fn.decorator_list)


def _source_name(qualified: str) -> str | None:
    for prefix, text in SOURCE_NAMES.items():
        if qualified == prefix or qualified.startswith(prefix + "."):
            return text
    return None


def _parts(e: ast.expr) -> Iterator[ast.expr]:
    """The sub-expressions a composite value is built from."""
    if isinstance(e, ast.BinOp):
        yield from (e.left, e.right)
    elif isinstance(e, ast.BoolOp):
        yield from e.values
    elif isinstance(e, ast.IfExp):
        yield from (e.body, e.orelse)
    elif isinstance(e, ast.JoinedStr):
        yield from e.values
    elif isinstance(e, ast.FormattedValue):
        yield e.value
    elif isinstance(e, ast.Tuple | ast.List | ast.Set):
        yield from e.elts
    elif isinstance(e, ast.Dict):
        yield from (v for v in e.values if v is not None)


def _bind(target: ast.expr, value: ast.expr) -> Iterator[tuple[str, ast.expr]]:
    """Names bound by assigning ``value`` to ``target`` (element-wise when both are tuples)."""
    if isinstance(target, ast.Name):
        yield target.id, value
    elif isinstance(target, ast.Starred):
        yield from _bind(target.value, value)
    elif isinstance(target, ast.Tuple | ast.List):
        same = isinstance(value, ast.Tuple | ast.List) and len(value.elts) == len(target.elts)
        for i, elt in enumerate(target.elts):
            yield from _bind(elt, value.elts[i] if same else value)  # type: ignore[attr-defined]


def _own_nodes(body: list[ast.stmt] | list[ast.expr]) -> Iterator[ast.AST]:
    """Every node of ``body`` outside nested functions and classes (which are yielded, not
    entered)."""
    stack: list[ast.AST] = list(reversed(body))
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | ast.ClassDef):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                stack.extend(reversed(node.decorator_list))
            continue
        stack.extend(reversed(list(ast.iter_child_nodes(node))))
