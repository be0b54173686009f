"""Where every export starts: a cifar-train checkpoint, the model it rebuilds, and what the file will say."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from cifar_export import PRODUCER
from cifar_export.errors import ExportError
from cifar_runtime.errors import one_line
from cifar_runtime.metadata import ModelInfo
from cifar_train.checkpoint import load_checkpoint, model_from_checkpoint, sha256_file
from cifar_train.errors import UserError

ARTIFACTS = Path("artifacts")  # where trained runs are kept: artifacts/<arch>/best.pt


@dataclass(frozen=True)
class Source:
    """A loaded checkpoint and the hash that ties every exported file back to it."""

    path: Path
    sha256: str
    checkpoint: dict[str, Any]

    @property
    def arch(self) -> str:
        return str(self.checkpoint["arch"])


def load_source(path: Path) -> Source:
    """Load a checkpoint; a missing, corrupt or foreign file becomes one ExportError."""
    try:
        ckpt = load_checkpoint(path)
    except UserError as e:
        raise ExportError(str(e)) from e
    return Source(path=path, sha256=sha256_file(path), checkpoint=ckpt)


def build_model(source: Source) -> nn.Module:
    """A fresh model with the checkpoint's weights, in eval mode; an unknown or mismatched arch is an ExportError."""
    try:
        return model_from_checkpoint(source.checkpoint)
    except UserError as e:  # its message lists every missing key over many lines: the first says enough
        raise ExportError(f"{source.path}: {one_line(e)} (is the checkpoint's arch right?)") from e


def model_info(source: Source, extra: dict[str, str]) -> ModelInfo:
    """The metadata an fp32 export carries: enough for the runtime to feed the model and name its outputs."""
    ckpt = source.checkpoint
    metrics = ckpt.get("metrics") or {}
    return ModelInfo(
        arch=source.arch,
        classes=tuple(ckpt["classes"]),
        input_size=(int(ckpt["input_size"][0]), int(ckpt["input_size"][1])),
        mean=tuple(float(m) for m in ckpt["mean"]),
        std=tuple(float(s) for s in ckpt["std"]),
        # cifar-train's eval transform: antialiased bilinear resize to input_size (ResNet18's 224), else none
        interpolation="bilinear",
        layout="NCHW",
        precision="fp32",
        source_sha256=source.sha256,
        val_acc=_optional_float(metrics.get("val_acc")),
        test_acc=_optional_float(metrics.get("test_acc")),
        producer=PRODUCER,
        extra={"config": json.dumps(ckpt.get("config") or {}, default=str), **extra},
    )


def best_checkpoints(root: Path = ARTIFACTS) -> list[Path]:
    """Every artifacts/<arch>/best.pt, sorted; an empty or missing folder is an ExportError."""
    found = sorted(root.glob("*/best.pt"))
    if not found:
        raise ExportError(f"no CHECKPOINT given and no {root}/<arch>/best.pt found: pass a checkpoint file")
    return found


def find_checkpoint(sha256: str, model_file: Path, root: Path = ARTIFACTS) -> Path:
    """The .pt file whose hash is `sha256`, looked for beside the model and in artifacts/<arch>/."""
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


def _optional_float(v: object) -> float | None:
    return None if v is None else float(v)  # type: ignore[arg-type]
