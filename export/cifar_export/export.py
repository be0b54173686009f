"""The one export function: export, check the graph, compare on real images, then publish or keep as FAILED.

A file is published under its real name only when its parity check passed; otherwise it is kept as
`<name>.FAILED.<ext>` for inspection and the published name is left untouched. Every file gets a
`<file>.parity.json` beside it, and the same report inside its metadata. An existing published file is never
replaced unless the caller asks (`overwrite`).
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import onnx
import torch

from cifar_export import PRODUCER
from cifar_export.config import TRAINED, ExportConfig
from cifar_export.engines import Engine
from cifar_export.errors import ExportError
from cifar_export.formats import FORMATS, ExportOptions, Format, file_name
from cifar_export.images import load_images
from cifar_export.parity import ParityReport, check_parity
from cifar_export.source import Source, build_model, checkpoint_engine, load_source, model_info
from cifar_runtime import ModelInfo, import_onnxruntime, validate_metadata
from cifar_train import atomic_write, ensure_writable


@dataclass(frozen=True)
class ExportResult:
    path: Path  # the published file, or the FAILED one
    report_path: Path  # <file>.parity.json beside it
    report: ParityReport

    @property
    def published(self) -> bool:
        return self.report.passed


def failed_path(path: Path) -> Path:
    """cnn.onnx -> cnn.FAILED.onnx: a name no loader picks up by accident."""
    return path.with_name(f"{path.stem}.FAILED{path.suffix}")


def report_path(path: Path) -> Path:
    return path.with_name(f"{path.name}.parity.json")


def refuse_overwrite(paths: list[Path], overwrite: bool) -> None:
    """A published file is a verified artifact: replacing it silently could downgrade it."""
    existing = [p for p in paths if p.exists()]
    if existing and not overwrite:
        raise ExportError(f"{existing[0]} already exists: pass --overwrite to replace it, or --out another folder")


def export_checkpoint(checkpoint: Path, formats: tuple[str, ...], cfg: ExportConfig) -> list[ExportResult]:
    """Export one checkpoint to each format and prove each file against it on real images."""
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ExportError(f"unknown format {unknown[0]!r}: use one of {', '.join(FORMATS)}")
    raw = cfg.options.raw
    if raw and not all(FORMATS[f].raw_ok for f in formats):
        raise ExportError(f"--raw is for {', '.join(f.name for f in FORMATS.values() if f.raw_ok)} only")
    source = load_source(checkpoint)
    tta = source.trained_tta if cfg.tta == TRAINED else cfg.tta
    out = Path(cfg.out) if cfg.out else checkpoint.parent
    targets = [out / file_name(source.arch, FORMATS[f], tta, raw) for f in formats]
    refuse_overwrite(targets, cfg.overwrite)
    ensure_writable(out)
    record = provenance(replace(cfg, tta=tta), source)
    info = model_info(source, tta, extra={"export": json.dumps(record)})
    if raw:
        info = replace(info, layout="NHWC")  # the input contract a --raw file declares (cifar_runtime.LAYOUTS)
    # The original, rebuilt separately: nothing done to the exporter's copy can leak into the reference.
    reference = checkpoint_engine(source, tta)
    width = reference.run(np.zeros((1, 3, *info.input_size), np.float32)).shape[1]
    validate_metadata(info, logits_width=width, source=str(checkpoint))  # refused here, not by every user later
    images = load_images(cfg.data, "test", info, cfg.parity.limit)
    results = []
    for name, path in zip(formats, targets, strict=True):
        fmt = FORMATS[name]
        with tempfile.TemporaryDirectory(prefix="cifar-export-") as tmp:
            candidate = export_candidate(fmt, source, tta, info, cfg.options, Path(tmp) / path.name)
            parity_cfg = cfg.parity
            if cfg.options.static_batch and fmt.static_batch_ok:
                parity_cfg = replace(parity_cfg, batch_sizes=(cfg.options.static_batch,))
            report = check_parity(reference, f"checkpoint {checkpoint.name}", candidate, images, "fp32", parity_cfg)
            results.append(publish(report, info, fmt, Path(tmp) / path.name, path, record))
    return results


def export_candidate(
    fmt: Format, source: Source, tta: int, info: ModelInfo, options: ExportOptions, tmp_file: Path
) -> Engine:
    """Write the candidate to tmp_file and read it back: parity runs on what is on disk."""
    fmt.export(build_model(source, tta), info, options, tmp_file)
    return fmt.load(tmp_file)


def publish(
    report: ParityReport, info: ModelInfo, fmt: Format, candidate: Path, path: Path, record: dict[str, object]
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
    fmt.restamp(candidate, props, target)
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
        "onnxruntime": import_onnxruntime().__version__,
    }
    if source is not None:
        record["checkpoint"] = source.path.name  # the name, not the machine's absolute path
        record["checkpoint_sha256"] = source.sha256
    return record
