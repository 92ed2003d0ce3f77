"""The verdict on a global a pickle imports: an allow-list of what torch, NumPy, scikit-learn,
joblib and the standard containers need to rebuild their objects; everything else is suspicious,
and known code-execution primitives are dangerous.

The allow-list was built by saving real objects (``torch.save`` of model, optimizer, scheduler
and RNG state; ``joblib.dump`` and ``pickle.dump`` of fitted estimators; NumPy object arrays and
generators) and recording their globals; ``tests/unit/supply_chain/scan/test_allowlist.py``
re-does that and fails when a benign file needs a name that is not here.
"""

from __future__ import annotations

import _compat_pickle
import functools
import re

from bastion.supply_chain.scan.interface import Verdict

__all__ = ["classify_global"]

_BUILTIN_SAFE = [
    "set",
    "frozenset",
    "dict",
    "list",
    "tuple",
    "bytearray",
    "bytes",
    "complex",
    "slice",
    "range",
    "int",
    "float",
    "str",
    "bool",
    "object",
]
_TORCH_DTYPES = [
    "float32",
    "float64",
    "float16",
    "bfloat16",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "bool",
    "complex64",
    "complex128",
    "complex32",
    "qint8",
    "quint8",
    "qint32",
    "quint4x2",
    "float8_e4m3fn",
    "float8_e5m2",
    "float",
    "float64",
    "double",
    "half",
    "long",
    "int",
    "short",
    "cfloat",
    "cdouble",
]
_TORCH_STORAGES = [
    "Float",
    "Double",
    "Half",
    "BFloat16",
    "Long",
    "Int",
    "Short",
    "Char",
    "Byte",
    "Bool",
    "ComplexFloat",
    "ComplexDouble",
    "QInt8",
    "QUInt8",
    "QInt32",
    "QUInt4x2",
    "QUInt2x4",
]
_TORCH_REBUILD = [
    "_rebuild_tensor",
    "_rebuild_tensor_v2",
    "_rebuild_tensor_v3",
    "_rebuild_parameter",
    "_rebuild_parameter_with_state",
    "_rebuild_sparse_tensor",
    "_rebuild_device_tensor_from_numpy",
    "_rebuild_qtensor",
    "_rebuild_nested_tensor",
    "_rebuild_meta_tensor_no_storage",
    "_rebuild_wrapper_subclass",
    "_rebuild_device_tensor_from_cpu_tensor",
]

_SAFE: frozenset[str] = frozenset(
    [f"builtins.{n}" for n in _BUILTIN_SAFE]
    + [f"__builtin__.{n}" for n in _BUILTIN_SAFE]
    + ["__builtin__.unicode", "__builtin__.long", "copyreg._reconstructor"]
    + ["copy_reg._reconstructor", "_codecs.encode", "argparse.Namespace"]
    + [f"collections.{n}" for n in ("OrderedDict", "defaultdict", "deque", "Counter")]
    + [f"datetime.{n}" for n in ("datetime", "date", "time", "timedelta", "timezone")]
    + ["decimal.Decimal", "fractions.Fraction", "uuid.UUID", "pathlib.PosixPath"]
    + ["pathlib.WindowsPath", "pathlib.PurePosixPath", "pathlib.PureWindowsPath"]
    + [f"torch._utils.{n}" for n in _TORCH_REBUILD]
    + [f"torch.{n}Storage" for n in _TORCH_STORAGES]
    + [f"torch.{n}" for n in _TORCH_DTYPES]
    + ["torch.storage.UntypedStorage", "torch.storage.TypedStorage", "torch.storage._StorageBase"]
    + ["torch.Size", "torch.device", "torch.Tensor", "torch.nn.parameter.Parameter"]
    + ["torch._tensor._rebuild_from_type_v2", "torch.serialization._get_layout"]
    + [f"torch.{n}" for n in ("strided", "sparse_coo", "sparse_csr", "sparse_csc", "_mkldnn")]
    + [f"torch.{n}" for n in ("contiguous_format", "channels_last", "preserve_format")]
    + [f"torch.{n}" for n in ("per_tensor_affine", "per_channel_affine", "per_tensor_symmetric")]
    + [f"numpy.{c}.multiarray.{n}" for c in ("core", "_core") for n in ("_reconstruct", "scalar")]
    + [f"numpy.{c}.numeric._frombuffer" for c in ("core", "_core")]
    + ["numpy.ndarray", "numpy.dtype", "numpy.ma.core._mareconstruct", "numpy.ma.core.MaskedArray"]
    + [f"numpy.random._pickle.{n}" for n in ("__generator_ctor", "__bit_generator_ctor")]
    + ["numpy.random._pickle.__randomstate_ctor", "numpy.random.mtrand.RandomState"]
    + ["numpy.random.bit_generator.SeedSequence", "numpy.random._generator.Generator"]
    + ["numpy.random.bit_generator.__pyx_unpickle_SeedSequence"]
    + [f"numpy.random._pcg64.{n}" for n in ("PCG64", "PCG64DXSM")]
    + ["numpy.random._mt19937.MT19937", "numpy.random._philox.Philox", "numpy.random._sfc64.SFC64"]
    + ["joblib.numpy_pickle.NumpyArrayWrapper", "joblib.numpy_pickle_compat.NDArrayWrapper"]
    + ["joblib.numpy_pickle_compat.ZNDArrayWrapper"]
    + [
        f"scipy.sparse._{k}.{k}_{kind}"
        for k in ("csr", "csc", "coo", "lil", "dok", "bsr", "dia")
        for kind in ("matrix", "array")
    ]
)

#: Whole modules (and their submodules) whose every name can run code or touch the system.
_DANGEROUS_MODULES = [
    "os",
    "posix",
    "nt",
    "subprocess",
    "_posixsubprocess",
    "sys",
    "runpy",
    "importlib",
    "imp",
    "pkgutil",
    "zipimport",
    "pickle",
    "_pickle",
    "cPickle",
    "dill",
    "cloudpickle",
    "shelve",
    "marshal",
    "pty",
    "socket",
    "_socket",
    "ssl",
    "shutil",
    "webbrowser",
    "code",
    "codeop",
    "ctypes",
    "_ctypes",
    "multiprocessing",
    "_multiprocessing",
    "asyncio",
    "concurrent",
    "threading",
    "_thread",
    "signal",
    "pip",
    "setuptools",
    "distutils",
    "ensurepip",
    "venv",
    "urllib",
    "urllib2",
    "http",
    "httplib",
    "ftplib",
    "smtplib",
    "telnetlib",
    "requests",
    "httpx",
    "aiohttp",
    "timeit",
    "pdb",
    "bdb",
    "trace",
    "cProfile",
    "profile",
    "doctest",
    "pydoc",
    "sqlite3",
    "_sqlite3",
    "commands",
    "popen2",
    "platform",
    "tempfile",
    "io",
    "_io",
    "codecs",
    "builtins.__dict__",
    "__builtin__.__dict__",
    "numpy.f2py",
    "numpy.distutils",
    "numpy.ctypeslib",
    "numpy.testing",
    "torch.hub",
    "torch.jit",
    "torch._dynamo",
    "torch.utils.cpp_extension",
    "torch.package",
    "torch._inductor",
    "torch.ops",
    "torch.classes",
    "torch.library",
    "joblib.numpy_pickle.load",
    "joblib.load",
    "keras.saving",
    "tensorflow.io",
    "tensorflow.keras",
    "gc",
    "inspect",
    "types",
    "linecache",
    "zipfile",
    "tarfile",
    "glob",
]

#: Single names that run code, open files, reach the network or unpickle again.
_DANGEROUS_NAMES = frozenset(
    [
        f"{b}.{n}"
        for b in ("builtins", "__builtin__")
        for n in [
            "eval",
            "exec",
            "execfile",
            "compile",
            "getattr",
            "setattr",
            "delattr",
            "__import__",
            "open",
            "input",
            "breakpoint",
            "globals",
            "locals",
            "vars",
            "exit",
            "quit",
            "help",
            "file",
            "reload",
            "apply",
            "memoryview",
            "type",
            "super",
            "classmethod",
            "staticmethod",
            "property",
            "__build_class__",
            "__loader__",
        ]
    ]
    + ["operator.attrgetter", "operator.methodcaller", "operator.itemgetter", "operator.call"]
    + ["functools.partial", "functools.reduce", "functools.partialmethod"]
    + ["torch.load", "torch.serialization.load", "torch.storage._load_from_bytes"]
    + ["torch.serialization._load", "torch.serialization._legacy_load", "torch._C._jit_load"]
    + ["numpy.load", "numpy.lib.npyio.load", "numpy.loadtxt", "numpy.fromfile", "numpy.save"]
    + ["numpy.lib._npyio_impl.load", "numpy.core.multiarray.fromfile", "copyreg.__newobj_ex__"]
)

#: Attribute names that, reached through a dotted path, lead out of the imported object.
_ESCAPE_ATTRS = frozenset(
    [
        "__globals__",
        "__builtins__",
        "__dict__",
        "__class__",
        "__base__",
        "__bases__",
        "__mro__",
        "__subclasses__",
        "__import__",
        "__getattribute__",
        "__reduce__",
        "__reduce_ex__",
        "__code__",
        "__closure__",
        "__func__",
        "__self__",
        "__module__",
        "__loader__",
        "__spec__",
        "eval",
        "exec",
        "compile",
        "system",
        "popen",
        "spawn",
        "getattr",
        "os",
        "sys",
        "subprocess",
        "builtins",
    ]
)

_DANGEROUS_MODULE_SET = frozenset(_DANGEROUS_MODULES)
_CLASS_NAME = re.compile(r"_?[A-Z][A-Za-z0-9_]*\Z")
_SKLEARN_EXCLUDED = ("sklearn.datasets", "sklearn.externals", "sklearn.utils._testing")


def _in_module(full: str, module: str) -> bool:
    return full == module or full.startswith(module + ".")


@functools.lru_cache(maxsize=8192)
def classify_global(module: str, name: str) -> tuple[Verdict | None, str]:
    """Return ``(verdict, reason)`` for ``module.name``; verdict None means allow-listed.

    Python 3 loads protocol 0-2 pickles with ``fix_imports``, which renames Python 2 names
    (``__builtin__.reduce`` becomes ``functools.reduce``); both names are judged, the worse wins.
    Results are cached: a model file imports the same few names again and again.
    """
    verdict, reason = _classify(module, name)
    mapped = _py3_name(module, name)
    if mapped != (module, name):
        other, why = _classify(*mapped)
        if other is not None and (verdict is None or other.rank > verdict.rank):
            return other, f"{why} (Python 3's name for {module}.{name})"
    return verdict, reason


def _py3_name(module: str, name: str) -> tuple[str, str]:
    if (module, name) in _compat_pickle.NAME_MAPPING:
        return _compat_pickle.NAME_MAPPING[(module, name)]
    return _compat_pickle.IMPORT_MAPPING.get(module, module), name


def _classify(module: str, name: str) -> tuple[Verdict | None, str]:
    full = f"{module}.{name}"
    if full in _DANGEROUS_NAMES:
        return Verdict.DANGEROUS, f"imports {full}, a known code-execution primitive"
    parts = full.split(".")
    for end in range(1, len(parts) + 1):  # every dotted prefix, module's own among them
        bad = ".".join(parts[:end])
        if bad in _DANGEROUS_MODULE_SET:
            return (
                Verdict.DANGEROUS,
                f"imports {full} from {bad}, which can run code or touch the system",
            )
    if "." in name:
        escapes = _ESCAPE_ATTRS.intersection(name.split("."))
        if escapes:
            reached = ", ".join(sorted(escapes))
            return Verdict.DANGEROUS, f"imports {full}: the dotted path walks through {reached}"
    if full in _SAFE:
        return None, ""
    if (
        module.startswith("sklearn.")
        and "." not in name
        and _CLASS_NAME.match(name)
        and not any(_in_module(module, m) for m in _SKLEARN_EXCLUDED)
    ):
        return None, ""
    return (
        Verdict.SUSPICIOUS,
        f"imports {full}, which is not in the allow-list of safe reconstructors",
    )
