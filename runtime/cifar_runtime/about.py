"""What `cifar-infer --version` and `--info` print: versions, execution providers and a model's metadata."""

from __future__ import annotations

from importlib import metadata

from cifar_runtime.api import Classifier
from cifar_runtime.errors import InstallError
from cifar_runtime.metadata import ModelInfo
from cifar_runtime.session import install_conflict, installed_ort_wheels, onnxruntime


def package_version() -> str:
    """This package's installed version."""
    try:
        return metadata.version("cifar-runtime")
    except metadata.PackageNotFoundError:  # running from a source tree that was never installed
        return "0+unknown"


def version_line() -> str:
    """e.g. 'cifar-runtime 0.1.0 (onnxruntime 1.32.0)'."""
    try:
        ort = f"onnxruntime {onnxruntime().__version__}"
    except InstallError as e:
        ort = str(e)
    return f"cifar-runtime {package_version()} ({ort})"


def runtime_lines() -> list[str]:
    """The environment: versions, installed ORT wheels, available providers, install conflicts."""
    ort = onnxruntime()
    lines = [
        f"cifar-runtime: {package_version()}",
        f"onnxruntime: {ort.__version__} (wheels: {', '.join(installed_ort_wheels()) or 'none found'})",
        f"providers available: {', '.join(ort.get_available_providers())}",
    ]
    conflict = install_conflict()
    return [*lines, f"warning: {conflict}"] if conflict else lines


def model_lines(classifier: Classifier) -> list[str]:
    """The loaded model: file, precision and why, active providers, decoding limits and every metadata field."""
    info = classifier.info
    h, w = info.input_size
    decode = classifier.decode
    jpeg = "full size (exact)" if decode.exact else "reduced scale when much larger than the input"
    lines = [
        f"providers active: {', '.join(classifier.providers)}",
        f"precision: {classifier.precision} ({classifier.precision_reason})",
        f"decoding: at most {decode.max_pixels} pixels per image and at once; JPEG at {jpeg}",
        f"model: {classifier.model_path}",
        f"  arch: {info.arch}",
        f"  classes ({len(info.classes)}): {', '.join(info.classes)}",
        f"  input: {_input(info.layout, h, w)}, resized {info.interpolation}",
        f"  mean: {list(info.mean)}  std: {list(info.std)}",
        f"  precision: {info.precision}",
        f"  val_acc: {info.val_acc}  test_acc: {info.test_acc}",
        f"  confidence: {_calibration(info)}",
        f"  source_sha256: {info.source_sha256 or '-'}",
        f"  producer: {info.producer or '-'}",
    ]
    return lines + [f"  {key}: {_short(value)}" for key, value in sorted(info.extra.items())]


def _calibration(info: ModelInfo) -> str:
    if info.temperature is None:
        return "uncalibrated (no temperature in this file: probabilities as trained, often over- or under-confident)"
    line = (
        f"calibrated (temperature {info.temperature:.4f} fitted on validation, folded into the graph; "
        "the network's own logits = output x temperature)"
    )
    threshold = info.recommended_min_confidence
    return line + (f"; recommended --min-confidence {threshold:.4f}" if threshold is not None else "")


def _short(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _input(layout: str, h: int, w: int) -> str:
    if layout == "NHWC":
        return f"uint8 (N, {h}, {w}, 3) NHWC RGB pixels, scaled and normalised inside the graph"
    return f"float32 (N, 3, {h}, {w}) {layout}, normalised by the runtime"
