"""`load_model`: turn what a user types on the command line into a `Model`.

Three forms of ``spec``:

* ``path/to/model.onnx``: an ONNX model, run by ONNX Runtime.
* ``package.module:factory``: an importable callable that returns a torch ``nn.Module``;
  ``weights`` is a ``.safetensors`` file loaded into it. Pickle-based checkpoints
  (``.pt``, ``.pth``, ``.bin``) are refused: unpickling runs arbitrary code.
* ``path/to/model.pkl`` (``.pickle``, ``.joblib``): a fitted scikit-learn classifier,
  unpickled only with ``trust_pickle=True``.

Every failure is a `LoadError` (or `UnsafeFileError`, or `ValidationError` for a bad
argument) that says what was expected; nothing escapes as a bare traceback.
"""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bastion.core.errors import LoadError, UnsafeFileError, ValidationError
from bastion.core.validation import check_bool, check_type, describe
from bastion.models.base import Model
from bastion.models.onnx_model import OnnxModel
from bastion.models.sklearn_model import SklearnModel
from bastion.models.torch_model import TorchModel

__all__ = ["load_model"]

_FACTORY = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
_PICKLES = (".pkl", ".pickle", ".joblib")
_TORCH_PICKLES = (".pt", ".pth", ".bin", ".ckpt", ".tar")
_CONVERT = (
    "convert it once, where you trust it, with "
    "safetensors.torch.save_file(module.state_dict(), 'model.safetensors')"
)


def _existing(path: Path, what: str = "model") -> Path:
    if not path.exists():
        raise LoadError(f"no such {what} file: {path}")
    if not path.is_file():
        raise LoadError(f"Expected a {what} file, but {path} is not a regular file")
    return path


def _short(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text if len(text) <= 500 else text[:497] + "..."


def _factory_module(spec: str, weights: Path | None) -> Any:
    """Import and call ``package.module:callable``; return the module it builds, weights loaded."""
    from torch import nn

    module_name, _, attr_path = spec.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
    except Exception as exc:
        raise LoadError(
            f"Expected {spec!r} to name an importable module, but importing {module_name!r} "
            f"failed: {type(exc).__name__}: {_short(exc)}"
        ) from exc
    for part in attr_path.split("."):
        try:
            target = getattr(target, part)
        except AttributeError as exc:
            raise LoadError(
                f"Expected {spec!r} to name a callable, but {part!r} is missing"
            ) from exc
    if not callable(target):
        raise LoadError(f"Expected {spec!r} to name a callable factory, but it is not callable")
    try:
        module = target()
    except Exception as exc:
        raise LoadError(
            f"The factory {spec!r} raised {type(exc).__name__}: {_short(exc)}; expected it to "
            "build a torch.nn.Module when called without arguments"
        ) from exc
    if not isinstance(module, nn.Module):
        raise LoadError(
            f"Expected the factory {spec!r} to return a torch.nn.Module, but it returned "
            f"{type(module).__name__}"
        )
    if weights is not None:
        _load_weights(module, weights)
    return module


def _load_weights(module: Any, weights: Path) -> None:
    suffix = weights.suffix.lower()
    if suffix in _TORCH_PICKLES or suffix in _PICKLES:
        raise UnsafeFileError(
            f"Refusing to load weights from {weights}: a {suffix} checkpoint is a pickle, and "
            f"unpickling runs whatever code it holds; {_CONVERT}"
        )
    if suffix != ".safetensors":
        raise LoadError(f"Expected weights to be a .safetensors file, but got {weights}")
    _existing(weights, "weights")
    from safetensors.torch import load_file

    try:
        state = load_file(str(weights))
    except Exception as exc:
        raise LoadError(f"Cannot read {weights} as safetensors: {_short(exc)}") from exc
    try:
        module.load_state_dict(state, strict=True)
    except Exception as exc:
        raise LoadError(
            f"The weights in {weights} do not fit the factory's module: {_short(exc)}"
        ) from exc


def _unpickle(path: Path) -> Any:
    import joblib  # ships with scikit-learn; reads plain pickles too

    try:
        return joblib.load(path)
    except Exception as exc:
        raise LoadError(f"Cannot unpickle {path}: {type(exc).__name__}: {_short(exc)}") from exc


def load_model(
    spec: str | os.PathLike[str],
    *,
    weights: str | os.PathLike[str] | None = None,
    input_shape: Sequence[int] | None = None,
    num_classes: int | None = None,
    bounds: tuple[float, float] = (0.0, 1.0),
    mean: float | Sequence[float] | None = None,
    std: float | Sequence[float] | None = None,
    trust_pickle: bool = False,
    batch_size: int = 256,
    budget: int | None = None,
) -> Model:
    """Build a `Model` from an ONNX file, a torch factory, or a (trusted) scikit-learn pickle.

    Args:
        spec: ``model.onnx``, ``package.module:factory``, or ``model.pkl``/``.joblib``.
        weights: a ``.safetensors`` file for a factory's module (factories only).
        input_shape: one sample's shape; required for a factory.
        num_classes: checked against (or, for a factory, inferred from) the model.
        bounds: valid input range.
        mean, std: normalisation the model expects (torch and ONNX models only).
        trust_pickle: consent to unpickle a scikit-learn file, which runs any code it holds.
        batch_size, budget: passed to the adapter.

    Returns:
        a `TorchModel`, `OnnxModel` or `SklearnModel`.

    Raises:
        LoadError: the file is missing or unreadable, or the factory cannot be used.
        UnsafeFileError: a pickle without ``trust_pickle``, or pickle-based torch weights.
        ValidationError: an argument does not fit the kind of model.
    """
    check_bool("trust_pickle", trust_pickle)
    if not isinstance(spec, (str, os.PathLike)):
        raise ValidationError(
            "Expected spec to be a model file or 'package.module:factory', "
            f"but got {describe('spec', spec)}"
        )
    weights_path = None
    if weights is not None:
        weights_path = Path(check_type("weights", weights, (str, os.PathLike), "a file path"))
    common: dict[str, Any] = {"bounds": bounds, "batch_size": batch_size, "budget": budget}
    if isinstance(spec, str) and _FACTORY.match(spec) and not Path(spec).exists():
        if input_shape is None:
            raise ValidationError(f"Expected input_shape for the torch factory {spec!r}")
        module = _factory_module(spec, weights_path)
        return TorchModel(
            module, input_shape=input_shape, num_classes=num_classes, mean=mean, std=std, **common
        )

    path = Path(spec)
    suffix = path.suffix.lower()
    if weights_path is not None:
        raise ValidationError(
            f"Expected weights only with a 'package.module:factory' spec, but spec is {path}"
        )
    if suffix == ".onnx":
        return OnnxModel(
            _existing(path),
            input_shape=input_shape,
            num_classes=num_classes,
            mean=mean,
            std=std,
            **common,
        )
    if suffix in _PICKLES:
        _existing(path)
        if not trust_pickle:
            raise UnsafeFileError(
                f"Refusing to unpickle {path}: a pickle runs whatever code it holds when loaded. "
                "Load it only if you trust where it came from, with --trust-pickle "
                "(trust_pickle=True); better, export the model to ONNX"
            )
        if mean is not None or std is not None:
            raise ValidationError("Expected no mean/std for a scikit-learn model")
        estimator = _unpickle(path)
        if not any(callable(getattr(estimator, m, None)) for m in ("predict", "predict_proba")):
            raise LoadError(
                f"Expected {path} to hold a fitted scikit-learn classifier, but it holds "
                f"{type(estimator).__name__}"
            )
        model = SklearnModel(estimator, input_shape=input_shape, **common)
        if num_classes is not None and num_classes != model.num_classes:
            raise ValidationError(
                f"Expected num_classes to match the estimator's {model.num_classes} classes, "
                f"but got num_classes={num_classes!r}"
            )
        return model
    if suffix in _TORCH_PICKLES:
        _existing(path)
        raise UnsafeFileError(
            f"Refusing to load {path}: a {suffix} file is a pickle, and unpickling runs whatever "
            "code it holds. Give a factory ('package.module:build') and its weights as "
            f".safetensors instead; {_CONVERT}"
        )
    if suffix == ".safetensors":
        raise LoadError(
            f"{path} holds weights only; give the factory that builds the network as spec "
            "('package.module:build') and this file as weights"
        )
    if isinstance(spec, str) and ":" in spec and not path.exists():
        raise LoadError(
            f"Expected spec to be 'package.module:callable' (dotted names), but got {spec!r}"
        )
    _existing(path)
    raise LoadError(
        f"Expected a .onnx file, a .pkl/.pickle/.joblib scikit-learn file or "
        f"'package.module:factory', but got {path}"
    )
