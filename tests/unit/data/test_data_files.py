"""File loaders: round trips, and a clear error for every hostile or malformed file."""

from __future__ import annotations

import os
import pickle
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bastion.core.errors import (
    BoundsError,
    LoadError,
    NonFiniteError,
    ShapeError,
    UnsafeFileError,
    ValidationError,
)
from bastion.data import load_csv, load_data, load_image_folder, load_npy, load_npz


class _Payload:
    """Unpickling this creates ``marker``: proof that code from the file ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.marker), "w"))


def test_the_payload_really_would_run(tmp_path: Path) -> None:
    marker = tmp_path / "proof"
    pickle.loads(pickle.dumps(_Payload(marker))).close()
    assert marker.exists()


# --- .npz and .npy ---------------------------------------------------------------------


def test_npz_round_trip_with_names(tmp_path: Path) -> None:
    path = tmp_path / "set.npz"
    x = np.random.default_rng(0).random((6, 3))
    np.savez(path, x=x, y=[0, 1, 2, 0, 1, 2], class_names=np.array(["a", "b", "c"]))
    data = load_npz(path)
    assert data.name == "set"
    assert data.x.shape == (6, 3) and data.x.dtype == np.float32
    assert data.class_names == ("a", "b", "c")
    assert data.bounds == (0.0, 1.0)


def test_npz_custom_keys_and_inferred_bounds(tmp_path: Path) -> None:
    path = tmp_path / "wide.npz"
    np.savez(path, feats=np.array([[-2.0, 5.0], [0.0, 1.0]]), labels=[0, 1])
    data = load_npz(path, x_key="feats", y_key="labels")
    assert data.bounds == (-2.0, 5.0)
    with pytest.raises(BoundsError, match="from -2 to 5"):
        load_npz(path, x_key="feats", y_key="labels", bounds=(0.0, 1.0))


def test_npz_missing_key_lists_the_keys(tmp_path: Path) -> None:
    path = tmp_path / "set.npz"
    np.savez(path, features=np.zeros((2, 2)), y=[0, 1])
    with pytest.raises(LoadError, match=r"expected arrays \['x'\].*\['features', 'y'\]"):
        load_npz(path)


def test_npz_with_a_pickled_object_array_is_refused_unexecuted(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.npz"
    np.savez(path, x=np.array([_Payload(marker)], dtype=object), y=[0])
    with pytest.raises(UnsafeFileError, match="pickled data"):
        load_npz(path)
    assert not marker.exists()


def test_npy_round_trip(tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", np.ones((4, 1, 2, 2)) * 0.5)
    np.save(tmp_path / "y.npy", np.array([0, 1, 0, 1]))
    data = load_npy(tmp_path / "x.npy", tmp_path / "y.npy")
    assert data.input_shape == (1, 2, 2)
    assert data.name == "x"


def test_a_pickle_named_npy_is_refused_unexecuted(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "x.npy"
    path.write_bytes(pickle.dumps(_Payload(marker)))
    np.save(tmp_path / "y.npy", np.array([0]))
    with pytest.raises(UnsafeFileError, match=r"pickled data.*refuses"):
        load_npy(path, tmp_path / "y.npy")
    assert not marker.exists()


def test_an_object_npy_is_refused_unexecuted(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "x.npy"
    np.save(path, np.array([_Payload(marker)], dtype=object), allow_pickle=True)
    np.save(tmp_path / "y.npy", np.array([0]))
    with pytest.raises(UnsafeFileError):
        load_npy(path, tmp_path / "y.npy")
    assert not marker.exists()


def test_not_numpy_files(tmp_path: Path) -> None:
    junk = tmp_path / "junk.npy"
    junk.write_text("hello")
    with pytest.raises(LoadError, match=r"not a .npy file"):
        load_npy(junk, junk)
    fake = tmp_path / "fake.npz"
    fake.write_text("hello")
    with pytest.raises(LoadError, match=r"not an .npz archive"):
        load_npz(fake)
    truncated = tmp_path / "cut.npy"
    np.save(truncated, np.zeros((100, 10)))
    truncated.write_bytes(truncated.read_bytes()[:300])
    with pytest.raises(LoadError, match=r"cut.npy"):
        load_npy(truncated, truncated)


# --- CSV -------------------------------------------------------------------------------


def _csv(tmp_path: Path, text: str, name: str = "table.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_csv_with_header_and_label_column(tmp_path: Path) -> None:
    path = _csv(tmp_path, "a,label,b\n0.1,1,0.2\n0.3,0,0.4\n\n0.5,1,0.6\n")
    data = load_csv(path)
    assert np.allclose(data.x, [[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]])
    assert data.y.tolist() == [1, 0, 1]
    assert data.feature_names == ("a", "b")
    assert data.class_names == ("0", "1")


def test_csv_without_header_uses_the_last_column(tmp_path: Path) -> None:
    data = load_csv(_csv(tmp_path, "1;2;0\n3;4;2\n", "t.csv"), delimiter=";")
    assert data.y.tolist() == [0, 2]
    assert data.feature_names is None
    assert data.bounds == (1.0, 4.0)


def test_csv_label_by_index_and_named_classes(tmp_path: Path) -> None:
    data = load_csv(
        _csv(tmp_path, "cat,0.5,0.1\ndog,0.2,0.3\ncat,0,1\n"), label_column=0, header=False
    )
    assert data.y.tolist() == [0, 1, 0]
    assert data.class_names == ("cat", "dog")


def test_csv_string_cell_names_row_and_column(tmp_path: Path) -> None:
    path = _csv(tmp_path, "a,b,label\n0.1,0.2,0\n0.3,oops,1\n")
    with pytest.raises(
        LoadError, match=r"table.csv: row 3, column 2 \('b'\): expected a number, but got 'oops'"
    ):
        load_csv(path)


def test_csv_other_errors(tmp_path: Path) -> None:
    with pytest.raises(LoadError, match=r"row 2: expected 3 cells, but got 2"):
        load_csv(_csv(tmp_path, "1,2,0\n1,2\n"))
    with pytest.raises(LoadError, match="no rows"):
        load_csv(_csv(tmp_path, "\n\n"))
    with pytest.raises(LoadError, match="no data rows"):
        load_csv(_csv(tmp_path, "a,b\n"))
    with pytest.raises(LoadError, match=r"row 2, label column.*'1.5'"):
        load_csv(_csv(tmp_path, "1,2,0\n1,2,1.5\n"))
    with pytest.raises(NonFiniteError, match="1 of 2 rows"):
        load_csv(_csv(tmp_path, "1,2,0\nnan,2,1\n"))
    with pytest.raises(ValidationError, match=r"label_column='y' to name a column.*\['a', 'b'\]"):
        load_csv(_csv(tmp_path, "a,b\n1,0\n"), label_column="y")
    with pytest.raises(LoadError, match="row 1, column 1"):
        load_csv(_csv(tmp_path, "a,b\n1,0\n"), header=False)
    with pytest.raises(ValidationError, match="delimiter"):
        load_csv(_csv(tmp_path, "1,0\n"), delimiter=",,")
    bad = tmp_path / "latin.csv"
    bad.write_bytes(b"1,\xff\n")
    with pytest.raises(LoadError, match="cannot read as CSV"):
        load_csv(bad)


# --- image folders ---------------------------------------------------------------------


def _image_folder(root: Path, size: tuple[int, int] = (5, 4)) -> Path:
    rng = np.random.default_rng(0)
    for cls in ("dog", "cat"):
        (root / cls).mkdir(parents=True)
        for i in range(3):
            pixels = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / cls / f"{i}.png")
    (root / "cat" / "notes.txt").write_text("not an image")
    return root


def test_image_folder_shapes_and_classes(tmp_path: Path) -> None:
    data = load_image_folder(_image_folder(tmp_path / "pets"))
    assert data.x.shape == (6, 3, 4, 5)
    assert data.x.dtype == np.float32
    assert data.class_names == ("cat", "dog")
    assert data.y.tolist() == [0, 0, 0, 1, 1, 1]
    assert data.bounds == (0.0, 1.0)
    assert data.x.min() >= 0.0 and data.x.max() <= 1.0
    assert data.name == "pets"
    gray = load_image_folder(tmp_path / "pets", grayscale=True, size=(2, 3))
    assert gray.x.shape == (6, 1, 2, 3)
    assert load_image_folder(tmp_path / "pets", size=7).x.shape == (6, 3, 7, 7)


def test_image_folder_mixed_shapes_need_size(tmp_path: Path) -> None:
    root = _image_folder(tmp_path / "pets")
    Image.new("RGB", (9, 9)).save(root / "dog" / "9.png")
    with pytest.raises(ShapeError, match=r"9.png has \(9, 9\); pass size="):
        load_image_folder(root)
    assert load_image_folder(root, size=(4, 5)).x.shape == (7, 3, 4, 5)


def test_truncated_png_names_the_file(tmp_path: Path) -> None:
    root = _image_folder(tmp_path / "pets", size=(64, 64))
    victim = root / "dog" / "1.png"
    victim.write_bytes(victim.read_bytes()[:-200])
    with pytest.raises(LoadError, match=r"1.png: truncated or corrupt image"):
        load_image_folder(root)


def test_non_image_with_image_suffix(tmp_path: Path) -> None:
    root = _image_folder(tmp_path / "pets")
    (root / "cat" / "evil.png").write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n")
    with pytest.raises(LoadError, match=r"evil.png: not an image in a supported format"):
        load_image_folder(root)


def _png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return len(data).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")

    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def test_decompression_bomb_is_refused(tmp_path: Path) -> None:
    root = _image_folder(tmp_path / "pets")
    bomb = root / "cat" / "bomb.png"
    bomb.write_bytes(_png_declaring(100_000, 100_000))
    assert bomb.stat().st_size < 200
    limit_before = Image.MAX_IMAGE_PIXELS
    with pytest.raises(LoadError, match=r"bomb.png.*decompression bomb"):
        load_image_folder(root)
    assert limit_before == Image.MAX_IMAGE_PIXELS  # the limit was only set for the call


@pytest.mark.parametrize("max_pixels", [10, 15])  # over 2x and between 1x and 2x the limit
def test_max_pixels_limits_every_image(tmp_path: Path, max_pixels: int) -> None:
    root = _image_folder(tmp_path / "pets")  # 5x4 = 20 pixels each
    with pytest.raises(LoadError, match=f"max_pixels={max_pixels}"):
        load_image_folder(root, max_pixels=max_pixels)
    assert len(load_image_folder(root, max_pixels=20)) == 6


def test_bad_image_folders(tmp_path: Path) -> None:
    with pytest.raises(LoadError, match="no such file"):
        load_image_folder(tmp_path / "missing")
    (tmp_path / "flat").mkdir()
    with pytest.raises(LoadError, match="no subfolders"):
        load_image_folder(tmp_path / "flat")
    (tmp_path / "flat" / "empty").mkdir()
    with pytest.raises(LoadError, match="empty: class folder holds no images"):
        load_image_folder(tmp_path / "flat")


# --- load_data -------------------------------------------------------------------------


def test_load_data_dispatches(tmp_path: Path) -> None:
    assert load_data("wine").name == "wine"
    np.savez(tmp_path / "a.npz", x=np.zeros((2, 2)), y=[0, 1])
    assert len(load_data(tmp_path / "a.npz")) == 2
    np.save(tmp_path / "x.npy", np.zeros((2, 2)))
    np.save(tmp_path / "y.npy", np.array([0, 1]))
    assert len(load_data(str(tmp_path / "x.npy"), y_path=tmp_path / "y.npy")) == 2
    assert len(load_data(_csv(tmp_path, "1,2,0\n", "t.CSV"))) == 1
    assert load_data(_image_folder(tmp_path / "pets"), grayscale=True).input_shape == (1, 4, 5)


def test_load_data_missing_path(tmp_path: Path) -> None:
    with pytest.raises(LoadError, match=r"no such file: .*nope.npz"):
        load_data(tmp_path / "nope.npz")
    with pytest.raises(LoadError, match=r"no such file: mnist .*embedded.*digits"):
        load_data("mnist")


def test_load_data_unknown_extension_lists_the_forms(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    path.write_bytes(b"\x80\x04")
    with pytest.raises(ValidationError, match=r"an embedded name, a .npz file, .*'.pt'"):
        load_data(path)


def test_load_data_refuses_bad_options(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="no options"):
        load_data("digits", size=4)
    with pytest.raises(ValidationError, match=r"Unsupported options \['x_kee'\]"):
        np.savez(tmp_path / "a.npz", x=np.zeros((2, 2)), y=[0, 1])
        load_data(tmp_path / "a.npz", x_kee="x")
    np.save(tmp_path / "x.npy", np.zeros((2, 2)))
    with pytest.raises(ValidationError, match="y_path"):
        load_data(tmp_path / "x.npy")
    with pytest.raises(ValidationError, match="spec"):
        load_data(42)  # type: ignore[arg-type]
    assert os.path.exists(tmp_path / "a.npz")
