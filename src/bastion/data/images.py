"""Loading a folder of images, one subfolder per class, without trusting the files.

Image files are attacker-supplied input to a parser (DESIGN.md, "the software around the
model"), so decoding is fenced in: only common raster formats are decoded (never EPS, which
Pillow hands to Ghostscript), a pixel limit stops decompression bombs before any pixel is
decoded, and truncated or corrupt files are refused rather than silently padded.
"""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from bastion.core.errors import LoadError, ShapeError
from bastion.core.validation import check_bool, check_int, fail
from bastion.data.datasets import Dataset

__all__ = ["DEFAULT_MAX_PIXELS", "IMAGE_EXTENSIONS", "load_image_folder"]

DEFAULT_MAX_PIXELS = 4096 * 4096
"""The largest image (width times height) `load_image_folder` decodes unless told otherwise."""

IMAGE_EXTENSIONS = frozenset(
    {
        ".png",
        ".jpg",
        ".jpeg",
        ".bmp",
        ".gif",
        ".tif",
        ".tiff",
        ".webp",
        ".ppm",
        ".pgm",
        ".pbm",
        ".pnm",
    }
)
"""File suffixes `load_image_folder` reads; other files in a class folder are ignored."""

_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP", "PPM")

# Pillow's bomb limit and truncation switch are process globals; one lock keeps concurrent
# loads from seeing each other's settings.
_PILLOW_LOCK = threading.Lock()


@contextmanager
def _pillow_guard(max_pixels: int) -> Iterator[None]:
    with _PILLOW_LOCK, warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        old_limit, old_truncated = Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES
        Image.MAX_IMAGE_PIXELS = max_pixels
        ImageFile.LOAD_TRUNCATED_IMAGES = False
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = old_limit
            ImageFile.LOAD_TRUNCATED_IMAGES = old_truncated


def _check_size(size: Any) -> tuple[int, int] | None:
    if size is None:
        return None
    if isinstance(size, int) and not isinstance(size, bool):
        side = check_int("size", size, low=1)
        return (side, side)
    if isinstance(size, (tuple, list)) and len(size) == 2:
        return (check_int("size[0]", size[0], low=1), check_int("size[1]", size[1], low=1))
    raise fail("size", "None, an int or a pair (height, width) of positive ints", size)


def _read_image(path: Path, mode: str, size: tuple[int, int] | None, max_pixels: int) -> np.ndarray:
    """Decode one image to float32 ``(C, H, W)`` in ``[0, 1]``; every failure is a LoadError."""
    try:
        with Image.open(path, formats=_FORMATS) as img:
            width, height = img.size
            if width * height > max_pixels:
                raise LoadError(
                    f"{path}: image of {width}x{height} = {width * height} pixels exceeds "
                    f"max_pixels={max_pixels} (a possible decompression bomb); raise max_pixels "
                    "if the file is trusted"
                )
            img.load()
            converted = img.convert(mode)
            if size is not None:
                converted = converted.resize((size[1], size[0]), Image.Resampling.BILINEAR)
            pixels = np.asarray(converted, dtype=np.float32) / 255.0
    except LoadError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise LoadError(
            f"{path}: image exceeds max_pixels={max_pixels} (a possible decompression bomb): {exc}"
        ) from exc
    except UnidentifiedImageError as exc:
        raise LoadError(
            f"{path}: not an image in a supported format ({', '.join(_FORMATS)})"
        ) from exc
    except Exception as exc:
        # Decoders of hostile files fail in many ways (OSError, ValueError, SyntaxError,
        # struct.error, ...); every one of them means this file cannot be used.
        raise LoadError(f"{path}: truncated or corrupt image: {type(exc).__name__}: {exc}") from exc
    if pixels.ndim == 2:
        return pixels[np.newaxis]
    return np.ascontiguousarray(pixels.transpose(2, 0, 1))


def _class_folders(root: Path) -> list[Path]:
    folders = sorted(
        (p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")),
        key=lambda p: p.name,
    )
    if not folders:
        raise LoadError(f"{root}: expected one subfolder per class, but found no subfolders")
    return folders


def _image_files(folder: Path) -> list[Path]:
    files = sorted(
        (
            p
            for p in folder.iterdir()
            if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS
        ),
        key=lambda p: p.name,
    )
    if not files:
        raise LoadError(
            f"{folder}: class folder holds no images ({', '.join(sorted(IMAGE_EXTENSIONS))})"
        )
    return files


def load_image_folder(
    path: str | os.PathLike[str],
    *,
    size: int | tuple[int, int] | None = None,
    grayscale: bool = False,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> Dataset:
    """Load images laid out as ``path/<class name>/<image file>`` into a `Dataset`.

    Class folders are taken in sorted name order, so the ``i``-th name is class ``i``; files
    are read in sorted order too, and hidden files or files without an image suffix are
    skipped. Pixels are scaled to ``[0, 1]`` and stacked channels-first as ``(n, C, H, W)``
    with ``C = 1`` when ``grayscale`` and ``C = 3`` (RGB, alpha dropped) otherwise.

    Args:
        path: the root folder.
        size: resize every image to ``(height, width)`` (an int means square); without it
            all images must already share one shape.
        grayscale: convert to one luminance channel instead of RGB.
        max_pixels: the largest width times height decoded; a larger image is refused before
            its pixels are decoded.

    Returns:
        A `Dataset` named after the folder, with ``bounds=(0, 1)`` and the folder names as
        ``class_names``.

    Raises:
        LoadError: missing folder, no class folders, an empty class folder, an image over
            ``max_pixels``, or a truncated, corrupt or unsupported file (named in the message).
        ShapeError: images of different shapes and no ``size``.
    """
    root = Path(path)
    if not root.exists():
        raise LoadError(f"no such file: {root}")
    if not root.is_dir():
        raise LoadError(f"{root}: expected a folder of class subfolders, but got a file")
    target = _check_size(size)
    mode = "L" if check_bool("grayscale", grayscale) else "RGB"
    limit = check_int("max_pixels", max_pixels, low=1)
    folders = _class_folders(root)
    images: list[np.ndarray] = []
    labels: list[int] = []
    first: Path | None = None
    with _pillow_guard(limit):
        for label, folder in enumerate(folders):
            for file in _image_files(folder):
                pixels = _read_image(file, mode, target, limit)
                if first is None:
                    first = file
                elif pixels.shape != images[0].shape:
                    raise ShapeError(
                        f"Expected every image to have the shape of {first} "
                        f"{images[0].shape[1:]}, but {file} has {pixels.shape[1:]}; pass "
                        "size=(height, width) to resize them all"
                    )
                images.append(pixels)
                labels.append(label)
    return Dataset(
        x=np.stack(images),
        y=np.asarray(labels, dtype=np.int64),
        name=root.resolve().name or str(root),
        bounds=(0.0, 1.0),
        class_names=tuple(f.name for f in folders),
    )
