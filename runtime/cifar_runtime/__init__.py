"""Torch-free CIFAR image classification on ONNX Runtime: `Classifier` in Python, `cifar-infer` in a shell."""

from cifar_runtime.about import package_version
from cifar_runtime.api import Classifier, Prediction, Score
from cifar_runtime.cliflags import exit_codes_epilog, version_flag
from cifar_runtime.errors import (
    CheckFailed,
    CifarRuntimeError,
    CifarRuntimeWarning,
    ImageError,
    InstallError,
    Interrupted,
    ModelError,
    OutputError,
    UsageError,
    one_line,
)
from cifar_runtime.exitcodes import (
    EXIT_CHECK_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_OUTPUT_FAILED,
    EXIT_PARTIAL,
    EXIT_USAGE,
    MEANINGS,
    say_error,
    user_errors,
)
from cifar_runtime.metadata import ModelInfo, validate_metadata
from cifar_runtime.session import onnxruntime as import_onnxruntime  # with ONNX Runtime's telemetry off

__version__ = package_version()
__all__ = [
    "exit_codes_epilog",
    "import_onnxruntime",
    "version_flag",
    "MEANINGS",
    "CheckFailed",
    "say_error",
    "user_errors",
    "EXIT_CHECK_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_OUTPUT_FAILED",
    "EXIT_PARTIAL",
    "EXIT_USAGE",
    "CifarRuntimeError",
    "CifarRuntimeWarning",
    "Classifier",
    "ImageError",
    "InstallError",
    "Interrupted",
    "ModelError",
    "ModelInfo",
    "OutputError",
    "Prediction",
    "Score",
    "UsageError",
    "__version__",
    "one_line",
    "validate_metadata",
]
