"""What a model file says about itself: the one contract between `cifar-export` and the runtime.

An exported model carries these as ONNX `metadata_props` (string -> string) and, for TorchScript, as the
extra file `metadata.json` holding the same mapping. List and dict values are JSON-encoded.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from cifar_runtime.errors import ModelError

SCHEMA_VERSION = "1"
REQUIRED_KEYS = ("arch", "classes", "input_size", "mean", "std")


@dataclass(frozen=True)
class ModelInfo:
    """Everything needed to feed a model and read its output, as written by `cifar-export`."""

    arch: str  # "cnn" | "resnet18"
    classes: tuple[str, ...]  # class names in logit index order
    input_size: tuple[int, int]  # (H, W) the network takes
    mean: tuple[float, float, float]  # per-channel, on [0, 1] pixel values
    std: tuple[float, float, float]
    interpolation: str = "bilinear"  # how any image is resized to input_size (antialiased when shrinking)
    layout: str = "NCHW"  # float32 input tensor layout
    precision: str = "fp32"  # "fp32" | "fp16" | "int8": the weights', inputs/outputs stay float32
    source_sha256: str = ""  # sha256 of the training checkpoint the file was exported from
    val_acc: float | None = None  # from the checkpoint's metrics, in [0, 1]
    test_acc: float | None = None
    producer: str = ""  # e.g. "cifar-export 0.1.0"
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
        return props

    @classmethod
    def from_props(cls, props: Mapping[str, str], source: str = "model") -> ModelInfo:
        """Decode what `to_props` wrote; raise ModelError naming the first missing or bad key."""
        missing = [k for k in REQUIRED_KEYS if k not in props]
        if missing:
            raise ModelError(
                f"{source} lacks the metadata '{missing[0]}': export it with `cifar-export onnx`"
            )
        try:
            info = cls(
                arch=props["arch"],
                classes=tuple(str(c) for c in json.loads(props["classes"])),
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
                extra={k: v for k, v in props.items() if k not in _KNOWN_KEYS},
            )
        except (ValueError, TypeError) as e:
            raise ModelError(
                f"{source} has malformed metadata ({e}): re-export it with `cifar-export`"
            ) from e
        if not info.classes:
            raise ModelError(f"{source} lists no classes in its metadata: re-export it with `cifar-export`")
        return info

    def json_extra(self, key: str) -> object | None:
        """A JSON value kept in `extra` (e.g. "parity", "config"), decoded; None when absent."""
        raw = self.extra.get(key)
        return None if raw is None else json.loads(raw)


_KNOWN_KEYS = frozenset(
    REQUIRED_KEYS
    + ("schema", "interpolation", "layout", "precision", "source_sha256", "val_acc", "test_acc", "producer")
)


def _pair(v: object) -> tuple[int, int]:
    h, w = v  # type: ignore[misc]
    return int(h), int(w)


def _triple(v: object) -> tuple[float, float, float]:
    a, b, c = v  # type: ignore[misc]
    return float(a), float(b), float(c)


def _optional_float(v: str | None) -> float | None:
    return None if v in (None, "") else float(v)
