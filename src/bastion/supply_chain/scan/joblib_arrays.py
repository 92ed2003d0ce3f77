"""joblib's array layout: after a ``NumpyArrayWrapper`` is built, joblib reads the array's raw
bytes (or, for object arrays, a further pickle) straight from the file, so the walker must skip
exactly the bytes joblib would read, computed from the wrapper's shape and dtype."""

from __future__ import annotations

import math
import re
from typing import Any

from bastion.supply_chain.scan.pickle_values import Glob, Obj
from bastion.supply_chain.scan.stream import Reader, StreamError

__all__ = ["skip_wrapped_array", "wrapper_class"]

_WRAPPER = "joblib.numpy_pickle.NumpyArrayWrapper"
_TYPESTR = re.compile(r"[<>|=]?([a-zA-Z])(\d*)")
_REFCOUNT_FLAG = 0x01  # NPY_ITEM_REFCOUNT: the dtype holds Python objects


def wrapper_class(obj: Obj) -> bool:
    """True when ``obj`` is an instance of joblib's ``NumpyArrayWrapper``."""
    origin = obj.origin
    if isinstance(origin, Glob) and origin.full == "copyreg._reconstructor":
        args = obj.args
        origin = args[0] if isinstance(args, tuple) and args else None
    return isinstance(origin, Glob) and origin.full == _WRAPPER


def _dtype(value: Any, pos: int) -> tuple[int, bool]:
    """Return ``(itemsize, holds_objects)`` of a pickled ``numpy.dtype``."""
    if not (isinstance(value, Obj) and isinstance(value.origin, Glob)):
        raise StreamError(f"joblib array at offset {pos} has no readable dtype")
    if value.origin.full != "numpy.dtype" or not isinstance(value.args, tuple) or not value.args:
        raise StreamError(f"joblib array at offset {pos} has dtype {value.origin.full}")
    typestr = value.args[0]
    match = _TYPESTR.fullmatch(typestr) if isinstance(typestr, str) else None
    if match is None:
        raise StreamError(f"joblib array at offset {pos} has dtype {typestr!r}")
    state = value.state if isinstance(value.state, tuple) else ()
    flags = state[7] if len(state) > 7 and isinstance(state[7], int) else 0
    if match.group(1) == "O" or flags & _REFCOUNT_FLAG:
        return 8, True
    if len(state) > 5 and isinstance(state[5], int) and state[5] > 0:
        return state[5], False
    if not match.group(2):
        raise StreamError(f"joblib array at offset {pos} has dtype {typestr!r} without a size")
    return int(match.group(2)), False


def skip_wrapped_array(obj: Obj, reader: Reader, pos: int) -> bool:
    """Skip the raw array bytes joblib reads after the wrapper at ``pos``.

    Returns True when the array holds objects, in which case a nested pickle follows that the
    caller must walk.
    """
    state = obj.state
    if not isinstance(state, dict):
        raise StreamError(f"joblib array wrapper at offset {pos} has no state dict")
    shape = state.get("shape")
    if not (isinstance(shape, tuple) and all(isinstance(d, int) and d >= 0 for d in shape)):
        raise StreamError(f"joblib array wrapper at offset {pos} has shape {shape!r}")
    itemsize, has_objects = _dtype(state.get("dtype"), pos)
    if has_objects:
        return True
    if state.get("numpy_array_alignment_bytes") is not None:
        reader.skip(reader.read(1)[0])
    reader.skip(math.prod(shape) * itemsize)
    return False
