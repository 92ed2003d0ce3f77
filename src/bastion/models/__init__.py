"""Model adapters: one `Model` protocol over torch, scikit-learn, ONNX Runtime and HTTP models."""

from bastion.models.base import BaseModel, Model, RestrictedModel
from bastion.models.counter import QueryCounter
from bastion.models.tensors import as_batch, as_labels, check_in_bounds
from bastion.models.torch_model import TorchModel

__all__ = [
    "BaseModel",
    "Model",
    "QueryCounter",
    "RestrictedModel",
    "TorchModel",
    "as_batch",
    "as_labels",
    "check_in_bounds",
]
