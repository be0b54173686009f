"""Where every export starts: a cifar-train checkpoint, the model it rebuilds, and what the file will say."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from cifar_export import PRODUCER
from cifar_export.engines import Engine, torch_module_engine
from cifar_export.errors import ExportError
from cifar_export.wrappers import TemperatureScaled
from cifar_runtime import ModelInfo
from cifar_train import TestTimeAugmentation, load_checkpoint, model_from_checkpoint, sha256_file

ARTIFACTS = Path("artifacts")  # where trained runs are kept: artifacts/<name>/best.pt


@dataclass(frozen=True)
class Source:
    """A loaded checkpoint and the hash that ties every exported file back to it."""

    path: Path
    sha256: str
    checkpoint: dict[str, Any]

    @property
    def arch(self) -> str:
        return str(self.checkpoint["arch"])

    def temperature_scaling(self, tta: int) -> dict[str, Any] | None:
        """The run's temperature fit for TTA level `tta` (cifar_train.temperature), or None when it has none."""
        record = (self.checkpoint.get("temperature_scaling") or {}).get(str(tta))
        return record if isinstance(record, dict) else None

    @property
    def trained_tta(self) -> int:
        """The test-time augmentation level the run reported its accuracy with (0 for the seed recipes)."""
        return int((self.checkpoint.get("config") or {}).get("tta", 0))


def load_source(path: Path) -> Source:
    """Load a checkpoint (weights_only: no pickled code runs); a missing or foreign file is a UserError."""
    return Source(path=path, sha256=sha256_file(path) if path.is_file() else "", checkpoint=load_checkpoint(path))


def build_model(source: Source, tta: int = 0) -> nn.Module:
    """A fresh eval-mode model with the checkpoint's weights; with tta > 0, wrapped so the views are in the graph;
    with a fitted temperature for that level, its logits divided by it (every exported file is calibrated)."""
    model = model_from_checkpoint(source.checkpoint)
    model = TestTimeAugmentation(model, tta).eval() if tta else model
    fit = source.temperature_scaling(tta)
    return TemperatureScaled(model, float(fit["temperature"])) if fit else model


def checkpoint_engine(source: Source, tta: int = 0) -> Engine:
    """The original, rebuilt from the checkpoint: what every exported file is compared with."""
    return torch_module_engine(build_model(source, tta), "torch-eager", model_info(source, tta, {}))


def model_info(source: Source, tta: int, extra: dict[str, str]) -> ModelInfo:
    """The metadata an fp32 export carries: enough for the runtime to feed the model and name its outputs."""
    ckpt = source.checkpoint
    metrics = ckpt.get("metrics") or {}
    if tta not in (0, 1, 2):
        raise ExportError(f"--tta {tta} must be 0, 1 or 2")
    fit = source.temperature_scaling(tta)
    return ModelInfo(
        arch=source.arch,
        classes=tuple(ckpt["classes"]),
        input_size=(int(ckpt["input_size"][0]), int(ckpt["input_size"][1])),
        mean=tuple(float(m) for m in ckpt["mean"]),
        std=tuple(float(s) for s in ckpt["std"]),
        interpolation="bilinear",  # cifar-train's eval transform: antialiased bilinear resize when sizes differ
        layout="NCHW",
        precision="fp32",
        source_sha256=source.sha256,
        # The run's figures describe the model as evaluated at some TTA level; they travel only when the file
        # computes the same thing (runs record every level up to their own).
        val_acc=_at_level(metrics, "val_acc", tta, source.trained_tta),
        test_acc=_at_level(metrics, "test_acc", tta, source.trained_tta),
        producer=PRODUCER,
        temperature=float(fit["temperature"]) if fit else None,
        extra={
            **({"dataset": json.dumps(ckpt["dataset"])} if ckpt.get("dataset") else {}),
            "config": json.dumps(ckpt.get("config") or {}, default=str),
            "tta": str(tta),
            **({"temperature_scaling": json.dumps(fit)} if fit else {}),
            **extra,
        },
    )


def best_checkpoints(root: Path = ARTIFACTS) -> list[Path]:
    """Every artifacts/<name>/best.pt, sorted; an empty or missing folder is an ExportError."""
    found = sorted(root.glob("*/best.pt"))
    if not found:
        raise ExportError(f"no CHECKPOINT given and no {root}/<name>/best.pt found: pass a checkpoint file")
    return found


def find_checkpoint(sha256: str, model_file: Path, root: Path = ARTIFACTS) -> Path:
    """The .pt file whose hash is `sha256`, looked for beside the model and in artifacts/<name>/."""
    if not sha256:
        raise ExportError(f"{model_file} does not name its source checkpoint: pass --checkpoint")
    # Shallow on purpose: hashing every .pt under a big tree would be slow and surprising.
    candidates = {p.resolve() for p in [*model_file.parent.glob("*.pt"), *root.glob("*/*.pt")]}
    for path in sorted(candidates):
        if path.stat().st_size > 0 and sha256_file(path) == sha256:
            return path
    raise ExportError(
        f"the checkpoint {model_file.name} was exported from (sha256 {sha256[:12]}…) is not beside it nor "
        f"under {root}/: pass --checkpoint"
    )


def _at_level(metrics: dict[str, Any], key: str, tta: int, trained_tta: int) -> float | None:
    """metrics[key] when the file's TTA level is the run's, else the run's figure at that level, if recorded."""
    value = metrics.get(key) if tta == trained_tta else (metrics.get(f"{key}_by_tta") or {}).get(str(tta))
    return None if value is None else float(value)
