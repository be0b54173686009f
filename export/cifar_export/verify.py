"""Re-run the parity check on any exported file (ONNX or TorchScript, any precision) against its checkpoint."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from cifar_export.errors import ExportError
from cifar_export.images import load_images
from cifar_export.onnx_export import batch_dim, load_onnx
from cifar_export.parity import ParityConfig, ParityReport, Runner, check_parity
from cifar_export.runners import ort_runner, torch_runner
from cifar_export.source import build_model, find_checkpoint, load_source
from cifar_export.torchscript import load_torchscript
from cifar_runtime.metadata import ModelInfo


@dataclass(frozen=True)
class VerifyConfig:
    checkpoint: str = ""  # "" = the .pt whose sha256 the file's metadata names (beside it or in artifacts/)
    data: str = ""  # ImageFolder root (its test/ split) or one split folder; "" = the fixture
    parity: ParityConfig = field(default_factory=ParityConfig)


@dataclass(frozen=True)
class Verification:
    report: ParityReport
    info: ModelInfo
    checkpoint: Path
    same_source: bool  # the checkpoint's sha256 is the one recorded in the file


def open_model(path: Path) -> tuple[Runner, ModelInfo, int]:
    """(runner, metadata, static batch or 0) for an exported .onnx or TorchScript file."""
    if not path.is_file():
        raise ExportError(f"model file {path} does not exist")
    if path.suffix == ".onnx":
        proto, info = load_onnx(path)
        return ort_runner(path), info, batch_dim(proto)
    module, info = load_torchscript(path)
    return torch_runner(module), info, 0


def verify_model(path: Path, cfg: VerifyConfig) -> Verification:
    """Compare an exported file with its original checkpoint on real images; the file decides the criterion."""
    runner, info, static_batch = open_model(path)
    checkpoint = Path(cfg.checkpoint) if cfg.checkpoint else find_checkpoint(info.source_sha256, path)
    source = load_source(checkpoint)
    if source.arch != info.arch:
        raise ExportError(f"{checkpoint} is a {source.arch} checkpoint but {path.name} is a {info.arch} model")
    images = load_images(cfg.data, "test", info, cfg.parity.limit)
    parity_cfg = replace(cfg.parity, batch_sizes=(static_batch,)) if static_batch else cfg.parity
    reference = torch_runner(build_model(source))
    report = check_parity(reference, f"checkpoint {checkpoint.name}", runner, images, info.precision, parity_cfg)
    return Verification(report, info, checkpoint, source.sha256 == info.source_sha256)
