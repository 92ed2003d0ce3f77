"""Loading data sets from files: NumPy ``.npz``/``.npy``, CSV, image folders, or by name.

Data files are attacker-supplied input (DESIGN.md), so nothing here runs code from a file:
NumPy files are read with ``allow_pickle=False`` and a pickle is refused with
`UnsafeFileError`, CSV cells are parsed as numbers and nothing else, and images go through
the guarded decoder in `bastion.data.images`.
"""

from __future__ import annotations

import csv
import inspect
import os
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bastion.core.errors import LoadError, UnsafeFileError, ValidationError
from bastion.core.validation import check_type, fail
from bastion.data.datasets import Dataset
from bastion.data.embedded import EMBEDDED, load_embedded
from bastion.data.images import load_image_folder
from bastion.data.validation import check_bounds, infer_bounds, validate_features

__all__ = ["SUPPORTED_FORMS", "load_csv", "load_data", "load_image_folder", "load_npy", "load_npz"]

SUPPORTED_FORMS = (
    "an embedded name",
    "a .npz file",
    "a .npy file (with y_path=...)",
    "a .csv file",
    "a folder of class subfolders of images",
)
"""What `load_data` accepts, in the words of its error message."""

_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
_PICKLE_MAGIC = b"\x80"  # PROTO opcode that starts every pickle of protocol 2 or later


def _existing_file(path: str | os.PathLike[str], name: str = "path") -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise fail(name, "a path (str or os.PathLike)", path)
    file = Path(path)
    if not file.exists():
        raise LoadError(f"no such file: {file}")
    if not file.is_file():
        raise LoadError(f"{file}: expected a file, but got a folder")
    return file


def _magic(file: Path) -> bytes:
    try:
        with file.open("rb") as handle:
            return handle.read(8)
    except OSError as exc:
        raise LoadError(f"{file}: cannot read: {exc}") from exc


def _refuse_pickle(file: Path, what: str) -> UnsafeFileError:
    return UnsafeFileError(
        f"{file}: {what} holds pickled data; unpickling can run arbitrary code, so bastion "
        "refuses it (allow_pickle=False). Save plain numeric arrays instead"
    )


def _numpy_error(file: Path, exc: Exception, what: str) -> LoadError:
    text = str(exc)
    if "pickle" in text or "Object arrays" in text:
        return _refuse_pickle(file, what)
    return LoadError(f"{file}: cannot read {what}: {type(exc).__name__}: {exc}")


def _finish(
    x: Any, y: Any, name: str, bounds: Any, class_names: Any = None, feature_names: Any = None
) -> Dataset:
    """Validate, infer bounds when none were given, and build the `Dataset`."""
    features = validate_features(x, name=f"{name} x")
    bounds = infer_bounds(features) if bounds is None else check_bounds("bounds", bounds)
    return Dataset(
        x=features,
        y=y,
        name=name,
        bounds=bounds,
        class_names=tuple(class_names) if class_names is not None else (),
        feature_names=tuple(feature_names) if feature_names is not None else None,
    )


def load_npz(
    path: str | os.PathLike[str],
    *,
    x_key: str = "x",
    y_key: str = "y",
    bounds: tuple[float, float] | None = None,
) -> Dataset:
    """Load features and labels from the arrays ``x_key`` and ``y_key`` of an ``.npz`` archive.

    Optional string arrays ``class_names`` and ``feature_names`` in the archive are used as
    names. Without ``bounds`` they are inferred: ``(0, 1)`` when the data lie inside it, else
    the data's ``(min, max)``. Returns a `Dataset` named after the file.

    Raises:
        LoadError: missing, unreadable or not a NumPy archive, or a key is absent (the
            message lists the keys present).
        UnsafeFileError: an array in the archive is pickled (object dtype); it is not loaded.
        ValidationError: the arrays are not valid features and labels.
    """
    file = _existing_file(path)
    check_type("x_key", x_key, str)
    check_type("y_key", y_key, str)
    if _magic(file)[:4] not in _ZIP_MAGIC:
        raise LoadError(f"{file}: not an .npz archive (no zip header)")
    arrays: dict[str, np.ndarray] = {}
    try:
        with np.load(file, allow_pickle=False) as archive:
            missing = [k for k in (x_key, y_key) if k not in archive.files]
            if missing:
                raise LoadError(
                    f"{file}: expected arrays {missing} in the archive, "
                    f"but it holds {archive.files}"
                )
            for key in (x_key, y_key, "class_names", "feature_names"):
                if key in archive.files:
                    arrays[key] = archive[key]
    except LoadError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise _numpy_error(file, exc, "the .npz archive") from exc
    names: dict[str, Any] = {}
    for key in ("class_names", "feature_names"):
        if key in arrays and key not in (x_key, y_key):
            if arrays[key].dtype.kind not in "US" or arrays[key].ndim != 1:
                raise LoadError(f"{file}: expected {key} to be a 1-d string array")
            names[key] = [str(v) for v in arrays[key]]
    return _finish(
        arrays[x_key],
        arrays[y_key],
        file.stem,
        bounds,
        names.get("class_names"),
        names.get("feature_names"),
    )


def _read_npy(file: Path) -> np.ndarray:
    magic = _magic(file)
    if not magic.startswith(_NPY_MAGIC):
        if magic.startswith(_PICKLE_MAGIC):
            raise _refuse_pickle(file, "the file")
        raise LoadError(f"{file}: not a .npy file (no NumPy header)")
    try:
        array = np.load(file, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise _numpy_error(file, exc, "the .npy file") from exc
    if not isinstance(array, np.ndarray):
        raise LoadError(f"{file}: expected one array, but got {type(array).__name__}")
    return array


def load_npy(
    x_path: str | os.PathLike[str],
    y_path: str | os.PathLike[str],
    *,
    bounds: tuple[float, float] | None = None,
) -> Dataset:
    """Load features from one ``.npy`` file and labels from another.

    Without ``bounds`` they are inferred as for `load_npz`. Returns a `Dataset` named after
    the features file.

    Raises:
        LoadError: a file is missing, unreadable or not a ``.npy`` file.
        UnsafeFileError: a file is a pickle or holds an object array; it is not unpickled.
        ValidationError: the arrays are not valid features and labels.
    """
    x_file = _existing_file(x_path, "x_path")
    y_file = _existing_file(y_path, "y_path")
    return _finish(_read_npy(x_file), _read_npy(y_file), x_file.stem, bounds)


def _short(cell: str) -> str:
    text = repr(cell)
    return text if len(text) <= 40 else text[:37] + "..."


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _read_rows(file: Path, delimiter: str) -> list[tuple[int, list[str]]]:
    rows: list[tuple[int, list[str]]] = []
    try:
        with file.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle, delimiter=delimiter, strict=True)
            for cells in reader:
                if cells and any(c.strip() for c in cells):
                    rows.append((reader.line_num, [c.strip() for c in cells]))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise LoadError(f"{file}: cannot read as CSV: {exc}") from exc
    return rows


def _label_index(file: Path, label_column: Any, names: list[str] | None, width: int) -> int:
    if label_column is None:
        return names.index("label") if names and "label" in names else width - 1
    if isinstance(label_column, str):
        if names is None or label_column not in names:
            have = f"the columns are {names}" if names else "the file has no header row"
            raise ValidationError(
                f"Expected label_column={label_column!r} to name a column, but {have}"
            )
        return names.index(label_column)
    if isinstance(label_column, int) and not isinstance(label_column, bool):
        if not -width <= label_column < width:
            raise fail("label_column", f"a column index in [{-width}, {width - 1}]", label_column)
        return label_column % width
    raise fail("label_column", "None, a column name or a column index", label_column)


def _parse_labels(file: Path, cells: list[tuple[int, str]]) -> tuple[np.ndarray, tuple[str, ...]]:
    if not all(_is_number(cell) for _, cell in cells):
        # Class names: index them in sorted order, as for image folders.
        classes = tuple(sorted({cell for _, cell in cells}))
        index = {c: i for i, c in enumerate(classes)}
        return np.asarray([index[cell] for _, cell in cells], dtype=np.int64), classes
    labels = []
    for line, cell in cells:
        value = float(cell)
        if not (value == value // 1 and value >= 0):  # refuses NaN, inf, 1.5 and -1
            raise LoadError(
                f"{file}: row {line}, label column: expected a class index (whole number >= 0), "
                f"but got {cell!r}"
            )
        labels.append(int(value))
    return np.asarray(labels, dtype=np.int64), ()


def load_csv(
    path: str | os.PathLike[str],
    *,
    label_column: str | int | None = None,
    bounds: tuple[float, float] | None = None,
    delimiter: str = ",",
    header: bool | None = None,
) -> Dataset:
    """Load a CSV file of one sample per row: numeric feature columns and one label column.

    Args:
        path: the file (UTF-8, a byte-order mark is ignored; blank lines are skipped).
        label_column: the column holding the labels, by header name or index; by default
            the column named ``label`` when there is one, else the last column. Labels are
            class indices, or class names that are indexed in sorted order.
        bounds: the valid input range; inferred as for `load_npz` when omitted.
        delimiter: the field separator.
        header: whether the first row names the columns; by default it does when any of its
            cells is not a number (pass ``header=False`` to make such a row an error).

    Returns:
        A `Dataset` named after the file, with the header's names as ``feature_names``.

    Raises:
        LoadError: missing or unreadable file, no data rows, rows of different lengths, or a
            cell that is not a number (the message names its row and column).
        ValidationError: a bad argument, NaN or infinity, or values outside ``bounds``.
    """
    file = _existing_file(path)
    if not isinstance(delimiter, str) or len(delimiter) != 1:
        raise fail("delimiter", "a single character", delimiter)
    if header is not None and not isinstance(header, bool):
        raise fail("header", "None or a bool", header)
    rows = _read_rows(file, delimiter)
    if not rows:
        raise LoadError(f"{file}: the CSV file holds no rows")
    if header is None:
        header = not all(_is_number(cell) for cell in rows[0][1])
    names = rows[0][1] if header else None
    data = rows[1:] if header else rows
    if not data:
        raise LoadError(f"{file}: the CSV file holds a header row but no data rows")
    width = len(rows[0][1])
    if width < 2:
        raise LoadError(f"{file}: expected at least one feature column and a label column")
    for line, cells in data:
        if len(cells) != width:
            raise LoadError(f"{file}: row {line}: expected {width} cells, but got {len(cells)}")
    target = _label_index(file, label_column, names, width)
    columns = [c for c in range(width) if c != target]
    x = np.empty((len(data), len(columns)), dtype=np.float64)
    for i, (line, cells) in enumerate(data):
        for j, col in enumerate(columns):
            try:
                x[i, j] = float(cells[col])
            except ValueError:
                label = f" ({names[col]!r})" if names else ""
                raise LoadError(
                    f"{file}: row {line}, column {col + 1}{label}: expected a number, "
                    f"but got {_short(cells[col])}"
                ) from None
    y, classes = _parse_labels(file, [(line, cells[target]) for line, cells in data])
    features = [names[c] for c in columns] if names else None
    return _finish(x, y, file.stem, bounds, classes or None, features)


def _call(loader: Callable[..., Dataset], path: Path, opts: dict[str, Any], *args: Any) -> Dataset:
    """Check ``opts`` against the loader's signature first, so a typo is a clear error."""
    try:
        inspect.signature(loader).bind(path, *args, **opts)
    except TypeError as exc:
        raise ValidationError(f"Unsupported options {sorted(opts)} for {path}: {exc}") from None
    return loader(path, *args, **opts)


def load_data(spec: str | os.PathLike[str], **opts: Any) -> Dataset:
    """Load a data set from whatever ``spec`` names, passing ``opts`` to the loader.

    ``spec`` is an embedded name (see `EMBEDDED`; no options), a ``.npz`` file
    (`load_npz`), a ``.npy`` features file with ``y_path=`` naming the labels file
    (`load_npy`), a ``.csv`` file (`load_csv`) or a folder of class subfolders
    (`load_image_folder`). Returns the loader's `Dataset`.

    Raises:
        LoadError: ``spec`` is neither an embedded name nor an existing path ("no such
            file"), or the loader failed.
        ValidationError: an unknown file extension (the message lists the supported forms),
            or options the loader does not take.
    """
    if not isinstance(spec, (str, os.PathLike)):
        raise fail("spec", "an embedded name or a path", spec)
    if isinstance(spec, str) and spec in EMBEDDED:
        if opts:
            raise ValidationError(
                f"Expected no options for the embedded data set {spec!r}, but got {sorted(opts)}"
            )
        return load_embedded(spec)
    path = Path(spec)
    if not path.exists():  # checked before the extension: a typo is the likelier mistake
        raise LoadError(f"no such file: {path} (nor an embedded data set: {', '.join(EMBEDDED)})")
    suffix = path.suffix.lower()
    if path.is_dir():
        return _call(load_image_folder, path, opts)
    if suffix == ".npz":
        return _call(load_npz, path, opts)
    if suffix == ".npy":
        if "y_path" not in opts:
            raise ValidationError(
                f"Expected y_path=... naming the labels file for the features file {path}"
            )
        y_path = opts.pop("y_path")
        return _call(load_npy, path, opts, y_path)
    if suffix == ".csv":
        return _call(load_csv, path, opts)
    raise ValidationError(
        f"Expected spec to be {', '.join(SUPPORTED_FORMS)}, but got {path} with the unknown "
        f"extension {suffix or '(none)'!r}"
    )
