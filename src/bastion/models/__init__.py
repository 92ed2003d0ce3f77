"""Model adapters: one `Model` protocol over torch, scikit-learn, ONNX Runtime and HTTP models.

``import bastion.models`` needs neither onnxruntime nor httpx: `OnnxModel` and `RemoteModel`
import them when a model is built.
"""

from bastion.models.base import BaseModel, Model, RestrictedModel, require_access
from bastion.models.counter import QueryCounter
from bastion.models.loading import load_model
from bastion.models.onnx_model import OnnxModel
from bastion.models.preprocessed import PreprocessedModel
from bastion.models.remote import RemoteModel
from bastion.models.sklearn_model import SklearnModel
from bastion.models.tensors import as_batch, as_labels, check_in_bounds
from bastion.models.torch_model import TorchModel, eval_mode

__all__ = [
    "BaseModel",
    "Model",
    "OnnxModel",
    "PreprocessedModel",
    "QueryCounter",
    "RemoteModel",
    "RestrictedModel",
    "SklearnModel",
    "TorchModel",
    "as_batch",
    "as_labels",
    "check_in_bounds",
    "eval_mode",
    "require_access",
    "load_model",
]
