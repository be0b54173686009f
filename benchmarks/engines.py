"""Every engine side by side in one run on this machine, each in its own process:

    python -m benchmarks.engines [CHECKPOINT] --data ../shared/cifar10-jpeg --out runs/bench/NAME

The model is exported and quantised afresh into the output folder (through the same checked paths as the
commands), the test images are preprocessed once into a float32 file that every engine reads, and each
engine is measured by `engine_worker` in a new Python process (benchmarks.measure), so that peak RSS is that
engine's alone. Writes bench.json, which `cifar-export card` reads.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Annotated

import numpy as np
import onnxruntime
import torch
import typer
from rich import box
from rich.console import Console
from rich.table import Table

from benchmarks.measure import run_measured
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
    UserError,
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
    result: dict[str, object] | None = None  # engine_worker's measurements
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
    run = run_measured([sys.executable, "-m", "benchmarks.engine_worker", json.dumps(spec)])
    if run.returncode != 0:
        lines = run.stderr.strip().splitlines() or ["no output"]
        return EngineRow(**{**asdict(row), "error": one_line(Exception(lines[-1]))})
    result = json.loads(run.stdout.strip().splitlines()[-1]) | {"peak_rss_mb": run.peak_rss_mb}
    return EngineRow(**{**asdict(row), "result": result})


def _mb(path: Path) -> float:
    return path.stat().st_size / 2**20


def bench_table(summary: dict) -> Table:
    """One row per engine, as measured in its own process."""
    cfg = summary["provenance"]["config"]
    table = Table(
        title=f"bench: {summary['arch']}, {summary['checkpoint']}",
        caption=f"p50/p99: batch-1 latency; img/s: batch-{cfg['throughput_batch']} throughput; RSS: peak of the "
        f"engine's own process; top-1 on {summary['image_count']} images of {summary['images']}",
        title_justify="left",
        caption_justify="left",
        box=box.SIMPLE,
    )
    table.add_column("engine", no_wrap=True)
    for col in ("file MB", "p50 ms", "p99 ms", "img/s", "RSS MB", "top-1 %", "check"):
        table.add_column(col, justify="right")
    for row in summary["rows"]:
        r = row["result"]
        checked = "yes" if row["checked"] else "[red]FAILED[/]"
        if r is None:
            table.add_row(
                row["engine"], f"{row['file_mb']:.1f}", f"[red]error: {row['error']}[/]", "", "", "", "", checked
            )
            continue
        table.add_row(
            row["engine"] + ("" if row["device"] == "cpu" else f" ({row['device']})"),
            f"{row['file_mb']:.1f}",
            f"{r['latency_p50_ms']:.2f}",
            f"{r['latency_p99_ms']:.2f}",
            f"{r['throughput_ips']:.0f}",
            f"{r['peak_rss_mb']:.0f}",
            f"{r['top1']:.2f}",
            checked,
        )
    return table


def ratio_lines(summary: dict) -> list[str]:
    """The speed-ups this run measured, beside the targets the README states."""
    batch = summary["provenance"]["config"]["throughput_batch"]
    names = {
        "ort_fp32_vs_eager_throughput": (f"ORT fp32 / eager, batch-{batch} throughput", "target >= 2"),
        "ort_fp32_vs_eager_latency_p50": ("ORT fp32 / eager, batch-1 p50 latency", "target <= 0.6"),
        "ort_int8_vs_fp32_latency_p50": ("ORT int8 / fp32, batch-1 p50 latency", "target <= 0.7"),
    }
    return [f"{names[k][0]}: {v:.2f}x ({names[k][1]})" for k, v in summary["ratios"].items()]


def main(
    checkpoint: Annotated[
        Path | None,
        typer.Argument(help="cifar-train checkpoint. Default: seeded random weights of --arch.", show_default=False),
    ] = None,
    arch: Annotated[str, typer.Option(help="Architecture when no checkpoint is given.")] = "cnn",
    data: Annotated[str, typer.Option(help="ImageFolder root (test/ scores, train/ calibrates int8).")] = "",
    limit: Annotated[int, typer.Option(min=0, help="Test images for top-1 (seeded sample); 0 = all.")] = 1000,
    tta: Annotated[int, typer.Option(min=-1, max=2, help="TTA level in the graphs; -1: the run's own.")] = TRAINED,
    out: Annotated[str, typer.Option(help="Folder for the files and bench.json. Default: runs/bench/<arch>.")] = "",
    latency_runs: Annotated[int, typer.Option(min=1, help="Timed batch-1 calls per engine.")] = 200,
    throughput_batch: Annotated[int, typer.Option(min=1, help="Batch size for throughput.")] = 256,
    throughput_runs: Annotated[int, typer.Option(min=1, help="Timed full batches per engine.")] = 5,
    calibration_count: Annotated[int, typer.Option(min=1, help="int8: training images to calibrate on.")] = 500,
) -> None:
    """Every engine side by side (eager, TorchScript, torch.export, ORT fp32/int8), each in its own process."""
    cfg = BenchConfig(
        str(checkpoint or ""),
        arch,
        tta,
        data,
        limit,
        out,
        latency_runs,
        throughput_batch,
        throughput_runs,
        calibration_count,
    )
    try:
        summary = run_bench(cfg)
    except (ExportError, UserError) as e:
        raise SystemExit(f"error: {e}") from None
    console = Console()
    console.print(bench_table(summary))
    for line in ratio_lines(summary):
        console.print(line)
    console.print(f"written {summary['out']}/bench.json")


if __name__ == "__main__":
    typer.run(main)
