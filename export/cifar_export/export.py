"""The one export function: export, check the graph, compare on real images, then publish or keep as FAILED.

A file is published under its real name only when its parity check passed; otherwise it is kept as
`<name>.FAILED.<ext>` for inspection and the published name is left untouched. Every file gets a
`<file>.parity.json` beside it, and the same report inside its metadata.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import onnx
import onnxruntime
import torch
from torch import nn

from cifar_export import PRODUCER
from cifar_export.errors import ExportError
from cifar_export.images import load_images
from cifar_export.onnx_export import DEFAULT_OPSET, export_onnx, save_onnx, writer
from cifar_export.parity import ParityConfig, ParityReport, Runner, check_parity
from cifar_export.runners import ort_runner, torch_runner
from cifar_export.source import Source, build_model, load_source, model_info
from cifar_export.torchscript import export_torchscript, load_torchscript, save_torchscript
from cifar_runtime.metadata import ModelInfo
from cifar_train.checkpoint import atomic_write

FORMATS = ("onnx", "torchscript")
Writer = Callable[[dict[str, str], Path], None]  # saves the checked model with these metadata props at a path


@dataclass(frozen=True)
class ExportConfig:
    out: str = ""  # folder for the files; "" = beside the checkpoint
    opset: int = DEFAULT_OPSET  # ONNX opset
    static_batch: int = 0  # fix the ONNX batch axis to this size; 0 = dynamic
    data: str = ""  # parity images: an ImageFolder root (its test/ split) or one split folder; "" = fixture
    parity: ParityConfig = field(default_factory=ParityConfig)


@dataclass(frozen=True)
class ExportResult:
    path: Path  # the published file, or the FAILED one
    report_path: Path  # <file>.parity.json beside it
    report: ParityReport

    @property
    def published(self) -> bool:
        return self.report.passed


def file_name(arch: str, fmt: str) -> str:
    return f"{arch}.onnx" if fmt == "onnx" else f"{arch}.torchscript.pt"


def failed_path(path: Path) -> Path:
    """cnn.onnx -> cnn.FAILED.onnx: a name no loader picks up by accident."""
    return path.with_name(f"{path.stem}.FAILED{path.suffix}")


def report_path(path: Path) -> Path:
    return path.with_name(f"{path.name}.parity.json")


def exportable_model(source: Source) -> nn.Module:
    """The model handed to the exporter: the checkpoint's, rebuilt, in eval mode."""
    return build_model(source).eval()


def export_checkpoint(checkpoint: Path, formats: tuple[str, ...], cfg: ExportConfig) -> list[ExportResult]:
    """Export one checkpoint to each format and prove each file against it on real images."""
    source = load_source(checkpoint)
    out = Path(cfg.out) if cfg.out else checkpoint.parent
    ensure_writable(out)
    record = provenance(cfg, source)
    info = model_info(source, extra={"export": json.dumps(record)})
    images = load_images(cfg.data, "test", info, cfg.parity.limit)
    # The original, rebuilt separately: nothing done to the exporter's copy can leak into the reference.
    reference = torch_runner(build_model(source))
    results = []
    for fmt in formats:
        path = out / file_name(source.arch, fmt)
        with tempfile.TemporaryDirectory(prefix="cifar-export-") as tmp:
            candidate, write = _export(fmt, exportable_model(source), info, cfg, Path(tmp) / path.name)
            parity_cfg = cfg.parity
            if fmt == "onnx" and cfg.static_batch:
                parity_cfg = replace(parity_cfg, batch_sizes=(cfg.static_batch,))
            report = check_parity(reference, f"checkpoint {checkpoint.name}", candidate, images, "fp32", parity_cfg)
            results.append(publish(report, info, write, path, record))
    return results


def _export(fmt: str, model: nn.Module, info: ModelInfo, cfg: ExportConfig, tmp_file: Path) -> tuple[Runner, Writer]:
    """Write the candidate to tmp_file; return a runner reading that file and a function that re-saves it."""
    if fmt == "onnx":
        proto = export_onnx(model, info, cfg.opset, cfg.static_batch)
        save_onnx(proto, tmp_file)
        return ort_runner(tmp_file), writer(proto)
    if fmt == "torchscript":
        export_torchscript(model, info, tmp_file)
        module, _ = load_torchscript(tmp_file)  # parity runs on what was read back from disk
        return torch_runner(module), lambda props, path: save_torchscript(module, props, path)
    raise ExportError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")


def publish(
    report: ParityReport,
    info: ModelInfo,
    write: Writer,
    path: Path,
    record: dict[str, object],
) -> ExportResult:
    """Embed the report in the metadata and write file + report: at `path` if it passed, else as FAILED."""
    props = info.to_props()
    props["parity"] = json.dumps(report.to_dict())
    target = path if report.passed else failed_path(path)
    summary = {
        "model": target.name,
        "published": report.passed,
        "precision": info.precision,
        "source_sha256": info.source_sha256,
        "parity": report.to_dict(),
        "export": record,
    }
    # The report goes first, so a published file never lacks one.
    atomic_write(report_path(target), lambda tmp: tmp.write_text(json.dumps(summary, indent=2) + "\n"))
    write(props, target)
    if report.passed:  # a stale FAILED file from an earlier attempt would only confuse
        for stale in (failed_path(path), report_path(failed_path(path))):
            stale.unlink(missing_ok=True)
    return ExportResult(target, report_path(target), report)


def provenance(config: object, source: Source | None) -> dict[str, object]:
    """How a file was made: the command's config, the source checkpoint, and the tool versions."""
    record: dict[str, object] = {
        "config": asdict(config),  # type: ignore[call-overload]
        "tool": PRODUCER,
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
    }
    if source is not None:
        record["checkpoint"] = str(source.path)
    return record


def ensure_writable(folder: Path) -> None:
    """Create `folder` and prove a file can be written there, before any slow work starts."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise ExportError(f"cannot write to {folder} ({e.strerror or e}): pass --out with a writable folder") from e
