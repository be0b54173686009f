"""The configs of cifar-export's commands, one frozen dataclass per command: each CLI flag maps onto a field.

Kept apart from the work they configure (which imports torch and onnx) so that the CLI can build its flags and
`--help` without loading either.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from cifar_export.formats import ExportOptions
from cifar_export.parity import ParityConfig

TRAINED = -1  # tta: the level the checkpoint's run evaluated with (its reported accuracy)
PRECISIONS = ("int8", "fp16")  # what `quantize` writes


@dataclass(frozen=True)
class ExportConfig:
    out: str = ""  # folder for the files; "" = beside the checkpoint
    options: ExportOptions = field(default_factory=ExportOptions)  # opset, static batch
    tta: int = TRAINED  # test-time augmentation inside the graph: 0 none, 1 mirror, 2 + translations
    data: str = ""  # parity images: an ImageFolder root (its test/ split) or one split folder; "" = samples
    parity: ParityConfig = field(default_factory=ParityConfig)
    overwrite: bool = False  # replace files that already exist


@dataclass(frozen=True)
class QuantizeConfig:
    precision: str = "int8"  # "int8" | "fp16"
    calibration_count: int = 500  # int8: training images the activation ranges are calibrated on
    data: str = ""  # ImageFolder root: train/ calibrates, test/ judges; a single split folder does both
    out: str = ""  # folder for the file; "" = beside the fp32 file
    parity: ParityConfig = field(default_factory=ParityConfig)  # max_drop and limit apply
    overwrite: bool = False  # replace a file that already exists


@dataclass(frozen=True)
class VerifyConfig:
    checkpoint: str = ""  # "" = the .pt whose sha256 the file's metadata names (beside it or in artifacts/)
    data: str = ""  # ImageFolder root (its test/ split) or one split folder; "" = the package's samples
    parity: ParityConfig = field(default_factory=ParityConfig)


@dataclass(frozen=True)
class WebConfig:
    out: Path  # the folder to write; refused if it exists, unless overwrite
    ort_dist: Path | None = None  # onnxruntime-web's dist/ folder; None = web/node_modules/... of this clone
    overwrite: bool = False
