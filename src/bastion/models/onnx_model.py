"""Adapter for an ONNX model run by ONNX Runtime; grants scores (or labels only).

``onnxruntime`` is imported when a model is opened, never at ``import bastion.models``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bastion.core.errors import AccessError, LoadError, ShapeError, ValidationError
from bastion.core.threat_model import Access
from bastion.core.validation import check_choice, check_int, check_type, describe, fail
from bastion.models._common import (
    channel_stat,
    check_label_array,
    check_score_array,
    normalize,
)
from bastion.models.base import BaseModel
from bastion.models.counter import QueryCounter

__all__ = ["OnnxModel"]

_FLOAT_TYPES = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(float16)": np.float16,
}
_OUTPUTS = ("logits", "probabilities", "labels")


def _open_session(source: Any, providers: Sequence[str]) -> tuple[Any, Path | None]:
    """Return ``(session, path)`` for a path or an existing session; raise `LoadError`."""
    if not isinstance(source, (str, os.PathLike)):
        if all(callable(getattr(source, m, None)) for m in ("get_inputs", "get_outputs", "run")):
            return source, None
        raise fail("path_or_session", "a path to an .onnx file or an InferenceSession", source)
    path = Path(source)
    if not path.exists():
        raise LoadError(f"no such model file: {path}")
    if not path.is_file():
        raise LoadError(f"Expected an ONNX model file, but {path} is not a regular file")
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise LoadError(
            "Reading ONNX models needs onnxruntime; install it with "
            "pip install 'bastion-mlsec[onnx]'"
        ) from exc
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: a refused file is reported by us, once
    try:
        session = ort.InferenceSession(str(path), sess_options=options, providers=list(providers))
    except Exception as exc:
        detail = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise LoadError(
            f"Expected {path} to be an ONNX model that ONNX Runtime can load, "
            f"but it is not: {detail}"
        ) from exc
    return session, path


def _pick(nodes: Sequence[Any], name: str | None, arg: str, what: str) -> Any:
    names = [node.name for node in nodes]
    if name is None:
        if not nodes:
            raise ValidationError(f"Expected the graph to have an {what}, but it has none")
        return nodes[0]
    check_type(arg, name, str)
    if name not in names:
        raise fail(arg, f"one of the graph's {what}s {names}", name)
    return nodes[names.index(name)]


def _static(dim: Any) -> int | None:
    return dim if isinstance(dim, int) and not isinstance(dim, bool) and dim > 0 else None


class OnnxModel(BaseModel):
    """Wrap an ONNX classifier: a file path or an ``onnxruntime.InferenceSession``.

    The graph must take one float input of shape ``(batch, *input_shape)`` and return, as
    the chosen output, logits or probabilities ``(batch, num_classes)`` or labels
    ``(batch,)``. Like `TorchModel`, inputs stay in attacker space (``bounds``) and the
    adapter applies ``(x - mean) / std`` before the graph sees them.

    Args:
        path_or_session: an ``.onnx`` file, or a session you opened yourself.
        input_shape: one sample's shape; read from the graph when its dimensions are static.
        num_classes: read from the output's shape, or from one uncharged dry run; required
            with ``output="labels"``.
        bounds: valid input range.
        mean, std: per-channel (first axis of ``input_shape``) or scalar normalisation.
        output: what the chosen output holds: ``"logits"`` (softmax gives the scores),
            ``"probabilities"`` (used as they are) or ``"labels"`` (label-only access).
        input_name, output_name: which graph input and output to use; default the first.
        providers: ONNX Runtime execution providers; default CPU only.
        batch_size, budget, counter: see `BaseModel`.

    Raises:
        LoadError: the file is missing, unreadable, or not an ONNX model.
        ValidationError: the graph's input shape is dynamic and no ``input_shape`` was given,
            or the graph does not fit the arguments.
    """

    scores_are_probabilities = True

    def __init__(
        self,
        path_or_session: str | os.PathLike[str] | Any,
        *,
        input_shape: Sequence[int] | None = None,
        num_classes: int | None = None,
        bounds: tuple[float, float] = (0.0, 1.0),
        mean: float | Sequence[float] | None = None,
        std: float | Sequence[float] | None = None,
        output: str = "logits",
        input_name: str | None = None,
        output_name: str | None = None,
        providers: Sequence[str] | None = None,
        batch_size: int = 256,
        budget: int | None = None,
        counter: QueryCounter | None = None,
    ) -> None:
        self.output = check_choice("output", output, _OUTPUTS)
        if providers is None:
            providers = ["CPUExecutionProvider"]
        if isinstance(providers, str) or not all(isinstance(p, str) for p in providers):
            raise fail("providers", "a list of provider names", providers)
        session, self.path = _open_session(path_or_session, providers)
        self.session = session
        inputs = list(session.get_inputs())
        graph_input = _pick(inputs, input_name, "input_name", "input")
        others = [node.name for node in inputs if node.name != graph_input.name]
        if others:
            raise ValidationError(
                f"Expected the graph to need one input, but besides '{graph_input.name}' "
                f"it needs {others}"
            )
        graph_output = _pick(list(session.get_outputs()), output_name, "output_name", "output")
        self._input_name: str = graph_input.name
        self._output_name: str = graph_output.name
        if graph_input.type not in _FLOAT_TYPES:
            raise ValidationError(
                f"Expected the graph's input '{graph_input.name}' to be a float tensor, "
                f"but it is {graph_input.type}"
            )
        self._dtype = _FLOAT_TYPES[graph_input.type]
        if not str(graph_output.type).startswith("tensor("):
            raise ValidationError(
                f"Expected the graph's output '{graph_output.name}' to be a tensor, but it is "
                f"{graph_output.type} (for a converted scikit-learn model, disable ZipMap)"
            )
        shape = self._input_shape(graph_input, input_shape)
        graph_shape = list(graph_input.shape or [])
        self._fixed_batch = _static(graph_shape[0]) if graph_shape else None
        self._mean = channel_stat("mean", mean, shape)
        self._std = channel_stat("std", std, shape, positive=True)
        if self.output == "labels":
            if num_classes is None:
                raise ValidationError(
                    "Expected num_classes with output='labels': a label output does not say "
                    "how many classes there are"
                )
            self.access = Access.LABELS
            self.scores_are_probabilities = False
        else:
            self.access = Access.SCORES
            num_classes = self._num_classes(graph_output, shape, num_classes)
        super().__init__(
            input_shape=shape,
            num_classes=num_classes,
            bounds=bounds,
            batch_size=batch_size,
            budget=budget,
            counter=counter,
        )

    def _input_shape(self, node: Any, given: Sequence[int] | None) -> tuple[int, ...]:
        dims = node.shape
        if given is not None:
            if not isinstance(given, (tuple, list)) or not given:
                raise fail("input_shape", "a non-empty tuple of positive ints", given)
            shape = tuple(check_int(f"input_shape[{i}]", d, low=1) for i, d in enumerate(given))
            if dims:
                sample = list(dims[1:])
                fits = len(sample) == len(shape) and all(
                    _static(g) is None or g == s for g, s in zip(sample, shape, strict=True)
                )
                if not fits:
                    raise ShapeError(
                        f"Expected input_shape to match the graph's input '{node.name}' of shape "
                        f"{list(dims)}, but got {describe('input_shape', given)}"
                    )
            return shape
        sample = list(dims[1:]) if dims else []
        if not sample or any(_static(d) is None for d in sample):
            raise ValidationError(
                f"Expected input_shape, because the graph's input '{node.name}' has the dynamic "
                f"or unknown shape {list(dims) if dims else dims}"
            )
        return tuple(int(d) for d in sample)

    def _num_classes(self, node: Any, shape: tuple[int, ...], given: int | None) -> int:
        dims = list(node.shape or [])
        if len(dims) == 1:
            raise ValidationError(
                f"Expected the graph's output '{node.name}' to hold per-class scores "
                f"(batch, num_classes), but its shape is {dims}; pass output='labels' if it "
                "holds labels"
            )
        found = _static(dims[1]) if len(dims) == 2 else None
        if found is None:
            with torch.no_grad():
                dry = self._run_graph(torch.zeros((1, *shape), device="cpu"))
            if dry.ndim != 2:
                raise ValidationError(
                    f"Expected the graph's output '{node.name}' to have shape (batch, "
                    f"num_classes), but a dry run gave shape {dry.shape}"
                )
            found = int(dry.shape[1])
        if given is not None and check_int("num_classes", given, low=2) != found:
            raise ValidationError(
                f"Expected num_classes to match the graph's output '{node.name}', which has "
                f"{found} classes, but got num_classes={given}"
            )
        return found

    def _run_graph(self, x: torch.Tensor) -> np.ndarray:
        """Run the graph on a normalised copy of ``x``, honouring a fixed batch dimension."""
        x = normalize(x, self._mean, self._std)
        array = x.detach().cpu().numpy().astype(self._dtype)
        step = self._fixed_batch or array.shape[0]
        pieces = []
        for start in range(0, array.shape[0], step):
            part = array[start : start + step]
            short = step - part.shape[0]
            if short:  # a graph with a fixed batch size: pad, then drop the padding's outputs
                part = np.concatenate([part, np.repeat(part[:1], short, axis=0)])
            try:
                result = self.session.run([self._output_name], {self._input_name: part})[0]
            except Exception as exc:
                raise ValidationError(
                    f"ONNX Runtime failed on a batch of shape {part.shape}: "
                    f"{str(exc).strip()[:300]}; check input_shape"
                ) from exc
            pieces.append(np.asarray(result)[: part.shape[0] - short])
        return np.concatenate(pieces)

    def _scores_batch(self, x: torch.Tensor) -> torch.Tensor:
        if self.output == "labels":
            raise AccessError("scores need 'scores' access, but this model grants only 'labels'")
        what = f"the graph's output '{self._output_name}'"
        raw = check_score_array(what, self._run_graph(x), x.shape[0], self.num_classes)
        scores = torch.from_numpy(raw).to(torch.float32)
        return torch.softmax(scores, dim=1) if self.output == "logits" else scores

    def _labels_batch(self, x: torch.Tensor) -> torch.Tensor:
        if self.output != "labels":
            return self._scores_batch(x).argmax(dim=1)
        what = f"the graph's output '{self._output_name}'"
        labels = check_label_array(what, self._run_graph(x), x.shape[0], self.num_classes)
        return torch.from_numpy(labels)

    def __repr__(self) -> str:
        source = str(self.path) if self.path is not None else "<session>"
        return (
            f"OnnxModel({source!r}, output={self.output!r}, access={self.access.value!r}, "
            f"input_shape={self.input_shape}, num_classes={self.num_classes}, bounds={self.bounds})"
        )
