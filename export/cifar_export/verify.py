"""Re-run the parity check on any exported file (any format, any precision) against its checkpoint."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from cifar_export.config import VerifyConfig
from cifar_export.errors import ExportError
from cifar_export.formats import open_engine
from cifar_export.images import load_images
from cifar_export.parity import ParityReport, check_parity
from cifar_export.source import checkpoint_engine, find_checkpoint, load_source
from cifar_runtime import ModelInfo


@dataclass(frozen=True)
class Verification:
    report: ParityReport
    info: ModelInfo
    checkpoint: Path
    same_source: bool  # the checkpoint's sha256 is the one recorded in the file


def verify_model(path: Path, cfg: VerifyConfig) -> Verification:
    """Compare an exported file with its original checkpoint on real images; the file decides the criterion."""
    candidate = open_engine(path)
    info = candidate.info
    if info is None:
        raise ExportError(f"{path} is a checkpoint, not an exported file: verify an .onnx, .torchscript.pt or .pt2")
    checkpoint = Path(cfg.checkpoint) if cfg.checkpoint else find_checkpoint(info.source_sha256, path)
    source = load_source(checkpoint)
    if source.arch != info.arch:
        raise ExportError(f"{checkpoint} is a {source.arch} checkpoint but {path.name} is a {info.arch} model")
    images = load_images(cfg.data, "test", info, cfg.parity.limit)
    static = candidate.static_batch
    parity_cfg = replace(cfg.parity, batch_sizes=(static,)) if static else cfg.parity
    reference = checkpoint_engine(source, int(info.extra.get("tta", "0")))
    report = check_parity(reference, f"checkpoint {checkpoint.name}", candidate, images, info.precision, parity_cfg)
    return Verification(report, info, checkpoint, source.sha256 == info.source_sha256)
