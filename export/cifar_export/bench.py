"""`cifar-export bench`: every engine side by side in one run on this machine, each in its own process.

The model is exported and quantised afresh into the output folder (through the same checked paths as the
commands), the test images are preprocessed once into a float32 file that every engine reads, and each
engine is measured by `bench_worker` in a new Python process, so that peak RSS is that engine's alone.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import onnxruntime
import torch

from cifar_export.errors import ExportError, one_line
from cifar_export.export import TRAINED, ExportConfig, export_checkpoint, provenance
from cifar_export.formats import FORMATS
from cifar_export.formats.onnx_export import FORMAT as ONNX
from cifar_export.images import load_images, split_folder
from cifar_export.parity import ParityConfig
from cifar_export.quantize import QuantizeConfig, quantize_model
from cifar_export.source import load_source, model_info
from cifar_train import (
    MODELS,
    atomic_write,
    build_checkpoint,
    create_model,
    ensure_writable,
    scan_image_folder,
    without_training_state,
)


@dataclass(frozen=True)
class BenchConfig:
    checkpoint: str = ""  # "" = seeded random weights of `arch`: speed does not depend on the weights
    arch: str = "cnn"  # used when no checkpoint is given
    tta: int = TRAINED  # test-time augmentation in the exported graphs; -1 = the checkpoint's own level
    data: str = ""  # ImageFolder root: test/ for top-1, train/ calibrates int8; "" = the fixture
    limit: int = 1000  # test images for top-1 (a seeded sample); 0 = all
    out: str = ""  # exported files and bench.json; "" = runs/bench/<arch>
    latency_runs: int = 200  # timed batch-1 calls per engine (stopped after 20 s)
    throughput_batch: int = 256
    throughput_runs: int = 5  # timed full-batch calls per engine (stopped after 20 s)
    calibration_count: int = 500  # int8 calibration images
    parity_limit: int = 64  # images the export and quantisation checks use before anything is timed


@dataclass(frozen=True)
class EngineRow:
    engine: str
    file: str
    file_mb: float
    checked: bool  # its parity / accuracy check passed
    device: str = "cpu"
    result: dict[str, object] | None = None  # bench_worker's measurements
    error: str = ""  # why the worker failed, if it did


def run_bench(cfg: BenchConfig) -> dict[str, object]:
    """Export, quantise, measure every engine; write and return bench.json's content."""
    given = load_source(Path(cfg.checkpoint)) if cfg.checkpoint else None
    arch = given.arch if given else cfg.arch
    out = Path(cfg.out or f"runs/bench/{arch}")
    ensure_writable(out)
    weights = out / f"{arch}.weights.pt"  # what torch eager loads: the model and its metadata, nothing else
    if given:
        # without optimizer state: the eager engine does not load it, and its file size would mislead
        atomic_write(weights, lambda tmp: torch.save(without_training_state(given.checkpoint), tmp))
    source = given or load_source(random_checkpoint(arch, weights, cfg.data))
    checkpoint = source.path

    parity = ParityConfig(limit=cfg.parity_limit)
    tta = source.trained_tta if cfg.tta == TRAINED else cfg.tta
    # The bench's folder is its own scratch space: each run replaces the files of the last.
    export_cfg = ExportConfig(str(out), tta=tta, data=cfg.data, parity=parity, overwrite=True)
    exported = dict(zip(FORMATS, export_checkpoint(checkpoint, tuple(FORMATS), export_cfg), strict=True))
    onnx_result = exported[ONNX.name]  # the file quantisation starts from
    quantized = [("ort-int8", "int8", "cpu")]
    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        quantized.append(("ort-fp16", "fp16", "cuda"))  # fp16 pays off on GPUs only
    rows = [EngineRow("torch-eager", str(weights), _mb(weights), True)]
    rows += [EngineRow(FORMATS[name].engine, str(r.path), _mb(r.path), r.published) for name, r in exported.items()]
    for engine, precision, device in quantized:
        qcfg = QuantizeConfig(
            precision, cfg.calibration_count, data=cfg.data, out=str(out), parity=parity, overwrite=True
        )
        q = quantize_model(onnx_result.path, qcfg)
        rows.append(EngineRow(engine, str(q.path), _mb(q.path), q.published, device))
    if tta:  # what the views cost: the same weights without test-time augmentation
        (plain,) = export_checkpoint(checkpoint, (ONNX.name,), replace(export_cfg, tta=0))
        rows.append(EngineRow("ort-fp32 no TTA", str(plain.path), _mb(plain.path), plain.published))

    info = model_info(source, tta, extra={})
    images = load_images(cfg.data, "test", info, cfg.limit)
    inputs, labels = out / "bench-inputs.f32", out / "bench-labels.npy"
    images.inputs.tofile(inputs)  # raw float32, (N, 3, H, W) C-order
    np.save(labels, images.labels)
    try:
        rows = [_measure(row, inputs, labels, images.inputs.shape, cfg) for row in rows]
    finally:
        inputs.unlink(missing_ok=True)  # ~600 MB for 1000 ResNet inputs: only the workers needed it
        labels.unlink(missing_ok=True)

    summary = {
        "arch": arch,
        "out": str(out),
        "checkpoint": str(cfg.checkpoint or "random weights (seed 0)"),
        "images": str(images.folder),
        "image_count": len(images.labels),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "provenance": provenance(cfg, source),
        "rows": [asdict(r) for r in rows],
        "ratios": ratios(rows),
    }
    atomic_write(out / "bench.json", lambda tmp: tmp.write_text(json.dumps(summary, indent=2) + "\n"))
    return summary


def random_checkpoint(arch: str, path: Path, data: str) -> Path:
    """A seeded random-weights model saved as a checkpoint, named with the data's classes."""
    if arch not in MODELS:
        raise ExportError(f"unknown architecture {arch!r}: use one of {', '.join(sorted(MODELS))}")
    _, _, classes = scan_image_folder(split_folder(data, "test"))
    torch.manual_seed(0)
    model = create_model(arch, num_classes=len(classes))
    ckpt = build_checkpoint(model, {"arch": arch, "seed": 0, "note": "random weights for timing"}, list(classes))
    atomic_write(path, lambda tmp: torch.save(ckpt, tmp))
    return path


def ratios(rows: list[EngineRow]) -> dict[str, float]:
    """Speed-ups within this one run (ORT fp32 against eager throughput, and so on)."""
    r = {row.engine: row.result for row in rows if row.result}
    out: dict[str, float] = {}
    if "torch-eager" in r and "ort-fp32" in r:
        out["ort_fp32_vs_eager_throughput"] = r["ort-fp32"]["throughput_ips"] / r["torch-eager"]["throughput_ips"]
        out["ort_fp32_vs_eager_latency_p50"] = r["ort-fp32"]["latency_p50_ms"] / r["torch-eager"]["latency_p50_ms"]
    if "ort-fp32" in r and "ort-int8" in r:
        out["ort_int8_vs_fp32_latency_p50"] = r["ort-int8"]["latency_p50_ms"] / r["ort-fp32"]["latency_p50_ms"]
    return out


def _measure(row: EngineRow, inputs: Path, labels: Path, shape: tuple[int, ...], cfg: BenchConfig) -> EngineRow:
    spec = {
        "engine": row.engine,
        "model": row.file,
        "device": row.device,
        "inputs": str(inputs),
        "labels": str(labels),
        "shape": list(shape),
        "latency_runs": cfg.latency_runs,
        "throughput_batch": cfg.throughput_batch,
        "throughput_runs": cfg.throughput_runs,
    }
    proc = subprocess.run(
        [sys.executable, "-m", "cifar_export.bench_worker", json.dumps(spec)], capture_output=True, text=True
    )
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines() or ["no output"]
        return EngineRow(**{**asdict(row), "error": one_line(Exception(lines[-1]))})
    return EngineRow(**{**asdict(row), "result": json.loads(proc.stdout.strip().splitlines()[-1])})


def _mb(path: Path) -> float:
    return path.stat().st_size / 2**20
