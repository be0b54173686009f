"""What a model file says about itself: the one contract between `cifar-export` and the runtime.

An exported model carries these as ONNX `metadata_props` (string -> string) and, for TorchScript, as the
extra file `metadata.json` holding the same mapping. List and dict values are JSON-encoded.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from cifar_runtime.errors import ModelError

SCHEMA_VERSION = "1"
REQUIRED_KEYS = ("arch", "classes", "input_size", "mean", "std")
# A model file may come from anywhere: its metadata is checked before any of it is used or shown.
MAX_CLASS_NAME = 100  # characters: a class name is printed in every table row
MAX_INPUT_SIDE = 4096  # pixels: a bigger input would be float32 batches of gigabytes
# What a model file takes, by its `layout`: the caller normalises (NCHW), or the graph does (NHWC, `--raw` files).
LAYOUTS = {
    "NCHW": "float32 (N, 3, H, W), scaled to [0, 1] and normalised with mean/std by the caller",
    "NHWC": "uint8 (N, H, W, 3) RGB pixels as decoded; the cast, scaling, mean/std and layout are in the graph",
}


@dataclass(frozen=True)
class ModelInfo:
    """Everything needed to feed a model and read its output, as written by `cifar-export`."""

    arch: str  # "cnn" | "resnet18"
    classes: tuple[str, ...]  # class names in logit index order
    input_size: tuple[int, int]  # (H, W) the network takes
    mean: tuple[float, float, float]  # per-channel, on [0, 1] pixel values
    std: tuple[float, float, float]
    interpolation: str = "bilinear"  # how any image is resized to input_size (antialiased when shrinking)
    layout: str = "NCHW"  # the input contract: one of LAYOUTS
    precision: str = "fp32"  # "fp32" | "fp16" | "int8": the weights', inputs/outputs stay float32
    source_sha256: str = ""  # sha256 of the training checkpoint the file was exported from
    val_acc: float | None = None  # from the checkpoint's metrics, in [0, 1]
    test_acc: float | None = None
    producer: str = ""  # e.g. "cifar-export 0.1.0"
    # The graph's logits are the network's divided by this (fitted on validation), so its probabilities are
    # calibrated; multiply by it for the network's own logits. None: a file exported before calibration (or from a
    # run with no validation split), whose confidences are as trained.
    temperature: float | None = None
    extra: Mapping[str, str] = field(default_factory=dict)  # everything else (parity, config), raw

    def to_props(self) -> dict[str, str]:
        """Encode as a flat string mapping for ONNX metadata_props / TorchScript extra files."""
        props = dict(self.extra)
        props.update(
            schema=SCHEMA_VERSION,
            arch=self.arch,
            classes=json.dumps(list(self.classes)),
            input_size=json.dumps(list(self.input_size)),
            mean=json.dumps(list(self.mean)),
            std=json.dumps(list(self.std)),
            interpolation=self.interpolation,
            layout=self.layout,
            precision=self.precision,
            source_sha256=self.source_sha256,
            producer=self.producer,
        )
        if self.val_acc is not None:
            props["val_acc"] = repr(float(self.val_acc))
        if self.test_acc is not None:
            props["test_acc"] = repr(float(self.test_acc))
        if self.temperature is not None:
            props["temperature"] = repr(float(self.temperature))
        return props

    @classmethod
    def from_props(cls, props: Mapping[str, str], source: str = "model", logits_width: int | None = None) -> ModelInfo:
        """Decode and validate what `to_props` wrote; ModelError naming the first missing or bad key."""
        missing = [k for k in REQUIRED_KEYS if k not in props]
        if missing:
            raise ModelError(f"{source} lacks the metadata '{missing[0]}': export it with `cifar-export onnx`")
        try:
            info = cls(
                arch=props["arch"],
                classes=_strings(json.loads(props["classes"])),
                input_size=_pair(json.loads(props["input_size"])),
                mean=_triple(json.loads(props["mean"])),
                std=_triple(json.loads(props["std"])),
                interpolation=props.get("interpolation", "bilinear"),
                layout=props.get("layout", "NCHW"),
                precision=props.get("precision", "fp32"),
                source_sha256=props.get("source_sha256", ""),
                val_acc=_optional_float(props.get("val_acc")),
                test_acc=_optional_float(props.get("test_acc")),
                producer=props.get("producer", ""),
                temperature=_optional_float(props.get("temperature")),
                extra={k: v for k, v in props.items() if k not in _KNOWN_KEYS},
            )
        except (ValueError, TypeError) as e:
            raise ModelError(f"{source} has malformed metadata ({e}): re-export it with `cifar-export`") from e
        validate_metadata(info, logits_width, source)
        return info

    @property
    def recommended_min_confidence(self) -> float | None:
        """The confidence threshold export chose on validation for its target accuracy of accepted images."""
        try:
            record = self.json_extra("temperature_scaling")
            return float(record["threshold"]["threshold"])  # type: ignore[index]
        except (ValueError, TypeError, KeyError):
            return None

    def json_extra(self, key: str) -> object | None:
        """A JSON value kept in `extra` (e.g. "parity", "config"), decoded; None when absent."""
        raw = self.extra.get(key)
        return None if raw is None else json.loads(raw)


def validate_metadata(info: ModelInfo, logits_width: int | None = None, source: str = "model") -> None:
    """ModelError unless the metadata is safe to show and use; `logits_width`: the model's number of outputs."""
    problem = _first_problem(info, logits_width)
    if problem:
        raise ModelError(f"{source} has invalid metadata: {problem}: re-export it with `cifar-export`")


def _first_problem(info: ModelInfo, logits_width: int | None) -> str | None:
    # Names are quoted with ascii(): the message itself must be safe wherever it is printed.
    if not info.classes:
        return "it lists no classes"
    for i, name in enumerate(info.classes):
        if not name.strip() or not name.isprintable() or len(name) > MAX_CLASS_NAME:
            return (
                f"class name {i} {ascii(name[:MAX_CLASS_NAME])} is not a printable, non-blank string "
                f"of at most {MAX_CLASS_NAME} characters"
            )
    if len(set(info.classes)) != len(info.classes):
        twice = next(c for c in info.classes if info.classes.count(c) > 1)
        return f"class name {ascii(twice)} is listed twice"
    if logits_width is not None and logits_width != len(info.classes):
        return f"it names {len(info.classes)} classes but the model outputs {logits_width} scores"
    if not all(1 <= side <= MAX_INPUT_SIDE for side in info.input_size):
        return f"input_size {list(info.input_size)} is not between 1 and {MAX_INPUT_SIDE} pixels"
    # mean and std are statistics of pixels scaled to [0, 1]; std = 1 means "no scaling"
    if not all(math.isfinite(m) and 0 <= m <= 1 for m in info.mean):
        return f"mean {list(info.mean)} is not within [0, 1]"
    if not all(math.isfinite(s) and 0 < s <= 1 for s in info.std):
        return f"std {list(info.std)} is not within (0, 1]"
    for name, acc in (("val_acc", info.val_acc), ("test_acc", info.test_acc)):
        if acc is not None and not (math.isfinite(acc) and 0 <= acc <= 1):
            return f"{name} {acc} is not a fraction in [0, 1]"
    if info.temperature is not None and not (math.isfinite(info.temperature) and info.temperature > 0):
        return f"temperature {info.temperature} is not a positive number"
    return None


_KNOWN_KEYS = frozenset(
    REQUIRED_KEYS
    + (
        "schema",
        "interpolation",
        "layout",
        "precision",
        "source_sha256",
        "val_acc",
        "test_acc",
        "producer",
        "temperature",
    )
)


def _strings(v: object) -> tuple[str, ...]:
    if not isinstance(v, list) or not all(isinstance(s, str) for s in v):
        raise ValueError("classes must be a JSON list of strings")
    return tuple(v)


def _pair(v: object) -> tuple[int, int]:
    h, w = v  # type: ignore[misc]
    return int(h), int(w)


def _triple(v: object) -> tuple[float, float, float]:
    a, b, c = v  # type: ignore[misc]
    return float(a), float(b), float(c)


def _optional_float(v: str | None) -> float | None:
    return None if v in (None, "") else float(v)
