"""Torch-free CIFAR image classification on ONNX Runtime: `Classifier` in Python, `cifar-infer` in a shell."""

from cifar_runtime.about import package_version
from cifar_runtime.api import Classifier, Prediction, Score
from cifar_runtime.errors import (
    CifarRuntimeError,
    CifarRuntimeWarning,
    ImageError,
    InstallError,
    ModelError,
    UsageError,
    one_line,
)
from cifar_runtime.metadata import ModelInfo, validate_metadata

__version__ = package_version()
__all__ = [
    "CifarRuntimeError",
    "CifarRuntimeWarning",
    "Classifier",
    "ImageError",
    "InstallError",
    "ModelError",
    "ModelInfo",
    "Prediction",
    "Score",
    "UsageError",
    "__version__",
    "one_line",
    "validate_metadata",
]
