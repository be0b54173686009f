"""`Classifier`: load a self-describing ONNX model once, then classify paths, PIL images or arrays.

One instance is safe to share across threads: after __init__ it holds only read-only state, and
ONNX Runtime's `InferenceSession.run` is thread-safe (its run-time provider fallback is switched off).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import overload

import numpy as np

from cifar_runtime.decode import DEFAULT_DECODE, DecodeBudget, DecodeConfig
from cifar_runtime.errors import ImageError, ModelError, UsageError, one_line
from cifar_runtime.locate import ENV_VAR, resolve_model
from cifar_runtime.metadata import LAYOUTS, ModelInfo
from cifar_runtime.precision import open_model
from cifar_runtime.preprocess import ImageLike, check_supported, model_input, pixels, read_pixels
from cifar_runtime.session import ort_errors

Input = str | os.PathLike[str] | ImageLike
RECOMMENDED = "recommended"  # min_confidence: the threshold the model file records
# Memory grows with the batch: its float32 inputs (and the network's activations, run RUN_CHUNK images at a time)
# are held at once. A batch whose float32 inputs would pass BATCH_BYTES is refused: 5,461 images of 32 x 32,
# 111 of 224 x 224, each 3 x 4 bytes per pixel.
BATCH_BYTES = 64 * 2**20
RUN_CHUNK = 64  # images per ONNX Runtime call: activations at 256 took ~100-300 MB more, and were no faster
# What each input layout accepts from the file's graph: NCHW floats (fp16 files may take float16), NHWC pixels.
_INPUT_DTYPES = {
    "NCHW": {"tensor(float)": np.float32, "tensor(float16)": np.float16},
    "NHWC": {"tensor(uint8)": np.uint8},
}


@dataclass(frozen=True)
class Score:
    """One class and its probability."""

    label: str
    confidence: float  # softmax probability in [0, 1]


@dataclass(frozen=True)
class Prediction:
    """The best class of one image and the top-k classes, best first (top_k[0] is the best class)."""

    label: str
    index: int  # into Classifier.classes
    confidence: float  # softmax probability in [0, 1]
    top_k: tuple[Score, ...]
    abstained: bool = False  # confidence is below the classifier's min_confidence: ask a person, do not act on it


class Classifier:
    """A CIFAR classifier on ONNX Runtime; `model=None` means $CIFAR_MODEL or the bundled model."""

    def __init__(
        self,
        model: str | os.PathLike[str] | None = None,
        device: str = "auto",
        providers: Sequence[str] | None = None,
        precision: str | None = "auto",
        decode: DecodeConfig = DEFAULT_DECODE,
        min_confidence: float | str = 0.0,
        threads: int = 0,
    ) -> None:
        """`precision`: auto (the default, as in cifar-infer: the int8 sibling on CPU when it keeps the accuracy) |
        fp32 | int8 | fp16 pick the file of `model`'s family (see `cifar_runtime.precision`); None runs exactly the
        file given. `decode`: the limits and JPEG scaling applied to image files.
        `min_confidence`: a prediction below it is marked `abstained` (0 accepts everything); "recommended": the
        threshold the model file records (chosen on validation for 99% accuracy of the accepted images).
        `threads`: ONNX Runtime's intra-op threads (0: its default, one per core)."""
        with _naming_env(model):
            opened = open_model(resolve_model(model), precision, device, providers, threads)
            self.model_path: Path = opened.path  # the file that runs: with a precision, maybe a sibling
            self.precision_reason: str = opened.why  # one line, e.g. "auto: int8 on CPU (... loses 0.10 ...)"
            self.info: ModelInfo = opened.info
            self._session = opened.session
            source = str(self.model_path)
            check_supported(self.info, source)
            inputs, outputs = self._session.get_inputs(), self._session.get_outputs()
            if len(inputs) != 1:
                raise ModelError(f"{source} has {len(inputs)} inputs; expected one image batch: re-export it")
            shape = inputs[0].shape  # e.g. ["N", 3, 32, 32]; a str or None marks a dynamic axis
            h, w = self.info.input_size
            want = ("N", 3, h, w) if self.info.layout == "NCHW" else ("N", h, w, 3)
            if len(shape) != 4 or any(isinstance(d, int) and d != x for d, x in zip(shape[1:], want[1:], strict=True)):
                raise ModelError(
                    f"{source} takes input {shape}, which does not match its metadata "
                    f"({', '.join(map(str, want))}, layout {self.info.layout}): re-export it"
                )
            dtypes = _INPUT_DTYPES[self.info.layout]
            if inputs[0].type not in dtypes:
                raise ModelError(
                    f"{source} takes {inputs[0].type}; layout {self.info.layout} takes "
                    f"{' or '.join(dtypes)}: re-export it"
                )
            self._input_name: str = inputs[0].name
            self._output_name: str = outputs[0].name  # logits (a --raw file also outputs probabilities, unused)
            self._input_dtype = dtypes[inputs[0].type]
            # A static batch axis (an export without dynamic_axes) is served by splitting and zero-padding.
            self._static_batch: int | None = shape[0] if isinstance(shape[0], int) else None
        self.min_confidence: float = _min_confidence(min_confidence, self.info, str(self.model_path))
        self.decode = decode
        # Shared by every thread that decodes through this classifier: worst case x concurrency stays bounded.
        self._budget = DecodeBudget(decode.max_pixels)

    @property
    def precision(self) -> str:
        """The precision of the weights that run: "fp32", "int8" or "fp16" (from the file's metadata)."""
        return self.info.precision

    @property
    def temperature(self) -> float | None:
        """The temperature folded into the file's logits (its probabilities are calibrated), or None for a file
        exported without one. The network's own logits are `logits(batch) * temperature`."""
        return self.info.temperature

    @property
    def classes(self) -> tuple[str, ...]:
        """Class names in logit order."""
        return self.info.classes

    @property
    def input_size(self) -> tuple[int, int]:
        """(H, W) every image is resized to."""
        return self.info.input_size

    @property
    def static_batch(self) -> int:
        """The model file's fixed batch size, or 0 when its batch axis is dynamic (batches are padded to it)."""
        return self._static_batch or 0

    @property
    def providers(self) -> list[str]:
        """The execution providers the session actually runs on, best first."""
        return list(self._session.get_providers())

    @overload
    def predict(self, x: Input, top_k: int = 1, batch_size: int = 64) -> Prediction: ...
    @overload
    def predict(self, x: list[Input], top_k: int = 1, batch_size: int = 64) -> list[Prediction]: ...

    def predict(self, x: Input | list[Input], top_k: int = 1, batch_size: int = 64) -> Prediction | list[Prediction]:
        """Classify one image (path, PIL image, uint8 HWC array) or a list of them, run in batches."""
        if not isinstance(x, list | tuple):
            return self.predict([x], top_k, batch_size)[0]
        self._check_args(top_k, batch_size)
        predictions: list[Prediction] = []
        for start in range(0, len(x), batch_size):
            batch = np.stack([self._prepare(item) for item in x[start : start + batch_size]])
            predictions += self.predict_batch(batch, top_k)
        return predictions

    def predict_many(
        self, items: Sequence[Input], top_k: int = 1, batch_size: int = 64
    ) -> list[Prediction | ImageError]:
        """One result per input, in order: its Prediction, or the ImageError saying why it could not be read."""
        self._check_args(top_k, batch_size)
        results: list[Prediction | ImageError] = []
        for start in range(0, len(items), batch_size):
            results += self.predict_prepared(
                [self._try_prepare(item) for item in items[start : start + batch_size]], top_k
            )
        return results

    def predict_prepared(
        self, inputs: Sequence[np.ndarray | ImageError], top_k: int = 1
    ) -> list[Prediction | ImageError]:
        """Classify per-image model inputs (see `model_input`) as one batch; errors among them stay in place."""
        arrays = [x for x in inputs if isinstance(x, np.ndarray)]
        predictions = iter(self.predict_batch(np.stack(arrays), top_k) if arrays else [])
        return [x if isinstance(x, ImageError) else next(predictions) for x in inputs]

    def predict_batch(self, batch: np.ndarray, top_k: int = 1) -> list[Prediction]:
        """Classify a batch the model takes as it is (see `model_input`)."""
        self.check_top_k(top_k)
        return to_predictions(self.logits(batch), self.classes, top_k, self.min_confidence)

    def model_input(self, pixels: np.ndarray) -> np.ndarray:
        """uint8 (N, H, W, 3) RGB pixels at the input size -> the batch this model takes: normalised float32
        (N, 3, H, W) for a file of layout NCHW, the pixels themselves for a --raw file (layout NHWC)."""
        return model_input(pixels, self.info)

    @property
    def max_batch_size(self) -> int:
        """The largest batch_size this model takes (see BATCH_BYTES)."""
        h, w = self.info.input_size
        return max(1, BATCH_BYTES // (3 * h * w * 4))

    def logits(self, batch: np.ndarray) -> np.ndarray:
        """The file's output (N, num_classes) float32 for a batch the model takes (see `model_input`): calibrated
        logits when the file has a temperature (softmax gives the probabilities shown), else the network's own."""
        if self._static_batch is None:
            chunks = [self._run(batch[i : i + RUN_CHUNK]) for i in range(0, len(batch), RUN_CHUNK)]
            return np.concatenate(chunks) if len(chunks) > 1 else self._run(batch)
        if len(batch) == self._static_batch:
            return self._run(batch)
        size, n = self._static_batch, len(batch)
        chunks = []
        for start in range(0, n, size):
            chunk = batch[start : start + size]
            padding = np.zeros((size - len(chunk), *batch.shape[1:]), batch.dtype)
            chunks.append(self._run(np.concatenate([chunk, padding]))[: len(chunk)])
        return np.concatenate(chunks) if chunks else np.zeros((0, len(self.classes)), np.float32)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        if len(batch) == 0:
            return np.zeros((0, len(self.classes)), np.float32)
        if (batch.dtype == np.uint8) != (self.info.layout == "NHWC"):
            raise UsageError(
                f"{self.model_path.name} (layout {self.info.layout}) takes "
                f"{LAYOUTS[self.info.layout]}, got {batch.dtype} {batch.shape}: use model_input()"
            )
        feed = {self._input_name: batch.astype(self._input_dtype, copy=False)}
        try:
            (out,) = self._session.run([self._output_name], feed)
        except ort_errors() as e:
            raise ModelError(f"{self.model_path} failed on a batch {batch.shape}: {one_line(e)}") from e
        if out.shape != (len(batch), len(self.classes)):
            raise ModelError(
                f"{self.model_path} returned shape {out.shape}, expected ({len(batch)}, {len(self.classes)}) "
                "logits for its classes: re-export it"
            )
        return out.astype(np.float32, copy=False)

    def read_pixels(self, path: str | os.PathLike[str]) -> np.ndarray:
        """Decode one image file within this classifier's limits, resized: uint8 (H, W, 3); ImageError if unreadable."""
        return read_pixels(path, self.info, self.decode, self._budget)

    def _prepare(self, item: Input) -> np.ndarray:
        """One input -> what the model takes for it (one row of a `model_input` batch)."""
        if not isinstance(item, str | os.PathLike):
            return self.model_input(pixels(item, self.info)[None])[0]
        try:
            return self.model_input(self.read_pixels(item)[None])[0]
        except ImageError as e:
            raise ImageError(f"{os.fspath(item)}: {e}") from e  # in a list of paths, say which one

    def _try_prepare(self, item: Input) -> np.ndarray | ImageError:
        try:
            return self._prepare(item)
        except ImageError as e:
            return e

    def _check_args(self, top_k: int, batch_size: int) -> None:
        self.check_top_k(top_k)
        self.check_batch_size(batch_size)

    def check_top_k(self, top_k: int, name: str = "top_k") -> None:
        """UsageError unless 1 <= top_k <= number of classes; `name`: how the caller's user spells the argument."""
        if not 1 <= top_k <= len(self.classes):
            raise UsageError(f"{name} must be between 1 and {len(self.classes)} for this model, got {top_k}")

    def check_batch_size(self, batch_size: int, name: str = "batch_size") -> None:
        """UsageError unless 1 <= batch_size <= max_batch_size."""
        if not 1 <= batch_size <= self.max_batch_size:
            h, w = self.input_size
            raise UsageError(
                f"{name} must be between 1 and {self.max_batch_size} for this model (memory grows with "
                f"the batch: {self.max_batch_size} images of {h}x{w} are {BATCH_BYTES >> 20} MB of "
                f"input), got {batch_size}"
            )


def _min_confidence(value: float | str, info: ModelInfo, source: str) -> float:
    if value == RECOMMENDED:
        recommended = info.recommended_min_confidence
        if recommended is None:
            raise UsageError(
                f"{source} records no recommended confidence threshold (it was exported without a "
                "fitted temperature): give a number between 0 and 1"
            )
        return recommended
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not 0 <= number <= 1:  # nan fails too
        raise UsageError(
            f"the minimum confidence must be a probability between 0 and 1 or {RECOMMENDED!r}, got {value!r}"
        )
    return number


@contextlib.contextmanager
def _naming_env(model: object) -> Iterator[None]:
    """A ModelError about a model path nobody typed says where it came from."""
    try:
        yield
    except ModelError as e:
        if model is None and os.environ.get(ENV_VAR):
            raise ModelError(f"{e} (the model named by the {ENV_VAR} environment variable)") from e
        raise


def to_predictions(
    logits: np.ndarray, classes: Sequence[str], top_k: int = 1, min_confidence: float = 0.0
) -> list[Prediction]:
    """Softmax over (N, C) logits -> one Prediction per row; ties go to the lower class index; a row whose
    confidence is below `min_confidence` is marked abstained."""
    z = logits.astype(np.float64)
    z = np.exp(z - z.max(axis=1, keepdims=True))
    probs = z / z.sum(axis=1, keepdims=True)  # (N, C)
    order = np.argsort(-probs, axis=1, kind="stable")[:, :top_k]  # (N, top_k)
    predictions = []
    for row, best in zip(probs, order, strict=True):
        scores = tuple(Score(classes[i], float(row[i])) for i in best)
        confidence = scores[0].confidence
        predictions.append(Prediction(scores[0].label, int(best[0]), confidence, scores, confidence < min_confidence))
    return predictions
