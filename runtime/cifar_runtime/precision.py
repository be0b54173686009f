"""Which file of a model to run: the fp32 export, or its int8 / fp16 sibling beside it, picked for the device.

`cifar-export` writes siblings side by side: `cnn.onnx` (fp32), `cnn.int8.onnx`, `cnn.fp16.onnx`. Each quantized
file carries its own parity report (metadata key `parity`): its accuracy on the test images next to the fp32
file's, so the runtime can judge a sibling from the sibling alone.

- `auto`: on CPU the int8 sibling when it passed its parity check, comes from the same checkpoint, and its
  recorded accuracy drop is at most AUTO_MAX_DROP points; fp32 otherwise, and always on CUDA. A file that is
  already int8 or fp16 runs as it is.
- `fp32` / `int8` / `fp16`: that sibling, or a ModelError saying how to make it; fp16 runs only on CUDA.
- None (the Python API's default): exactly the file given.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cifar_runtime.errors import CifarRuntimeWarning, ModelError, UsageError
from cifar_runtime.metadata import ModelInfo
from cifar_runtime.session import CUDA, open_session

if TYPE_CHECKING:
    import onnxruntime as ort

PRECISIONS = ("auto", "fp32", "int8", "fp16")
AUTO_MAX_DROP = 0.3  # accuracy points (percent of test images): the most `auto` gives up for int8 on CPU
_QUANTIZED = ("int8", "fp16")


@dataclass(frozen=True)
class Opened:
    """The model file that runs, its session and metadata, and one line saying why this file was picked."""

    path: Path
    session: ort.InferenceSession
    info: ModelInfo
    why: str


def sibling(path: Path, precision: str) -> Path:
    """The file of `precision` beside `path`: cnn.onnx <-> cnn.int8.onnx <-> cnn.fp16.onnx."""
    stem = path.name.removesuffix(".onnx")
    for suffix in _QUANTIZED:
        stem = stem.removesuffix(f".{suffix}")
    return path.with_name(f"{stem}.onnx" if precision == "fp32" else f"{stem}.{precision}.onnx")


def accuracy_drop(info: ModelInfo) -> float | None:
    """Accuracy points a quantized file lost against its fp32 reference in its own parity report (worst batch
    size); None when the report is missing, malformed or did not pass."""
    try:
        parity = info.json_extra("parity")
    except ValueError:
        return None
    if not isinstance(parity, dict) or parity.get("passed") is not True:
        return None
    reference = parity.get("reference_accuracy")
    rows = parity.get("rows")
    accuracies = [row.get("accuracy") for row in rows if isinstance(row, dict)] if isinstance(rows, list) else []
    numbers = [reference, *accuracies]
    if not accuracies or not all(isinstance(a, int | float) and math.isfinite(a) for a in numbers):
        return None
    return float(reference) - min(float(a) for a in accuracies)


def open_model(
    path: Path, precision: str | None, device: str = "auto", providers: Sequence[str] | None = None, threads: int = 0
) -> Opened:
    """Open the file of `path`'s family that `precision` asks for (see the module docstring); `threads`: ONNX
    Runtime's intra-op threads (0: its default)."""
    if precision is not None and precision not in PRECISIONS:
        raise UsageError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    given = _open(path, device, providers, "the file as given", threads)
    if precision is None:
        return given
    on_cuda = CUDA in given.session.get_providers()
    if precision == "auto":
        return _auto(given, on_cuda, threads)
    if precision == "fp16" and not on_cuda:
        raise UsageError("precision fp16 runs only on CUDA, and this model runs on CPU: use auto, fp32 or int8")
    if given.info.precision == precision:
        return Opened(path, given.session, given.info, f"{precision}, the file as given")
    wanted = sibling(path, precision)
    if not wanted.is_file():
        fp32 = sibling(path, "fp32")
        make = "cifar-export onnx CHECKPOINT" if precision == "fp32" else f"cifar-export quantize --{precision} {fp32}"
        raise ModelError(f"no {precision} version of {path}: expected {wanted} (make it with `{make}`)")
    chosen = _open(wanted, device, providers, f"{precision}, as asked", threads)
    if chosen.info.precision != precision:
        raise ModelError(f"{wanted} holds a {chosen.info.precision} model, not {precision}: re-export it")
    return chosen


def _auto(given: Opened, on_cuda: bool, threads: int = 0) -> Opened:
    if given.info.precision != "fp32":
        return _because(given, f"auto: {given.info.precision}, the file as given")
    if on_cuda:
        return _because(given, "auto: fp32 on CUDA")
    candidate = sibling(given.path, "int8")
    if not candidate.is_file():
        return _because(given, f"auto: fp32 (no {candidate.name} beside it)")
    try:
        int8 = _open(candidate, "cpu", None, "", threads)
    except ModelError as e:  # e.g. an IR version newer than this onnxruntime reads
        warnings.warn(f"{candidate} not used ({e}); running fp32 {given.path}", CifarRuntimeWarning, stacklevel=4)
        return _because(given, f"auto: fp32 ({candidate.name} does not load here)")
    if int8.info.source_sha256 != given.info.source_sha256:
        warnings.warn(
            f"{candidate} comes from another checkpoint than {given.path}; running fp32: re-export the int8 file",
            CifarRuntimeWarning,
            stacklevel=4,
        )
        return _because(given, f"auto: fp32 ({candidate.name} comes from another checkpoint)")
    drop = accuracy_drop(int8.info)
    if drop is None:
        return _because(given, f"auto: fp32 ({candidate.name} records no passed accuracy check)")
    if drop > AUTO_MAX_DROP:
        return _because(given, f"auto: fp32 ({candidate.name} loses {drop:.2f} accuracy points > {AUTO_MAX_DROP})")
    return _because(int8, f"auto: int8 on CPU ({candidate.name} loses {drop:.2f} accuracy points <= {AUTO_MAX_DROP})")


def _because(opened: Opened, why: str) -> Opened:
    return Opened(opened.path, opened.session, opened.info, why)


def _open(path: Path, device: str, providers: Sequence[str] | None, why: str, threads: int = 0) -> Opened:
    session = open_session(path, device, providers, threads)
    return Opened(path, session, read_info(session, str(path)), why)


def read_info(session: ort.InferenceSession, source: str) -> ModelInfo:
    """A session's model metadata, validated against its output width."""
    out_shape = session.get_outputs()[0].shape  # e.g. ["N", 10]
    width = out_shape[1] if len(out_shape) == 2 and isinstance(out_shape[1], int) else None
    try:
        props = dict(session.get_modelmeta().custom_metadata_map)
    except UnicodeDecodeError as e:  # ONNX Runtime hands strings over as they are in the file
        raise ModelError(f"{source} has metadata that is not valid UTF-8: re-export it with `cifar-export`") from e
    return ModelInfo.from_props(props, source, width)
