"""`cifar-export`: a thin Typer layer over the library; each command builds a config and calls one function."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from cifar_export.bench import BenchConfig, run_bench
from cifar_export.card import write_card
from cifar_export.errors import CheckFailed, ExportError
from cifar_export.export import FORMATS, ExportConfig, ExportResult, export_checkpoint
from cifar_export.folder_check import check_folder, write_check
from cifar_export.onnx_export import DEFAULT_OPSET
from cifar_export.parity import ParityConfig
from cifar_export.quantize import QuantizeConfig, quantize_model
from cifar_export.report import bench_table, parity_table, ratio_lines
from cifar_export.source import best_checkpoints
from cifar_export.verify import VerifyConfig, verify_model
from cifar_runtime.errors import one_line

app = typer.Typer(
    help="Export cifar-train checkpoints to ONNX and TorchScript, prove they match, quantise, benchmark.\n\n"
    "Exit codes: 0 ok; 1 bad input (missing or corrupt checkpoint, wrong architecture, unwritable folder, "
    "bad data); 2 bad usage; 3 a parity or accuracy check failed (the file is kept as <name>.FAILED.<ext> "
    "and not published).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()

Checkpoint = Annotated[
    Path | None,
    typer.Argument(help="cifar-train checkpoint (.pt). Default: every artifacts/<arch>/best.pt.", show_default=False),
]
Out = Annotated[str, typer.Option("--out", help="Folder for the files. Default: beside the input.")]
Data = Annotated[
    str,
    typer.Option(
        "--data",
        help="Real images: an ImageFolder root (train/, test/) or one split folder. Default: the committed fixture.",
    ),
]
Limit = Annotated[int, typer.Option("--limit", help="Use a seeded sample of this many test images; 0 = all.")]
Opset = Annotated[int, typer.Option("--opset", help="ONNX opset (18 or newer).")]
StaticBatch = Annotated[int, typer.Option("--static-batch", help="Fix the ONNX batch axis to N; 0 keeps it dynamic.")]
Atol = Annotated[float, typer.Option("--atol", help="fp32: largest allowed |logit difference|.")]
MinAgreement = Annotated[
    float, typer.Option("--min-agreement", help="fp32: required top-1 agreement with the original, percent.")
]
MaxDrop = Annotated[
    float, typer.Option("--max-drop", help="fp16/int8: top-1 accuracy the file may lose, percentage points.")
]


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Our exceptions become one line on stderr and their exit code; anything else is a bug and shows a trace."""
    try:
        yield
    except ExportError as e:
        typer.echo(f"error: {one_line(e)}", err=True)
        raise typer.Exit(e.exit_code) from None


def _export(formats: tuple[str, ...], checkpoint: Path | None, cfg: ExportConfig) -> None:
    with user_errors():
        if checkpoint is None:
            checkpoints = best_checkpoints()
            console.print(f"no checkpoint given: exporting {', '.join(str(c) for c in checkpoints)}")
        else:
            checkpoints = [checkpoint]
        results = [r for c in checkpoints for r in export_checkpoint(c, formats, cfg)]
        _show(results)


def _show(results: list[ExportResult]) -> None:
    for r in results:
        console.print(parity_table(r.path.name, r.report))
        console.print(
            f"{'published' if r.published else 'NOT published, kept as'} {r.path} (report {r.report_path.name})"
        )
    failed = [r for r in results if not r.published]
    if failed:
        reasons = "; ".join(f"{r.path.name}: {r.report.failures[0]}" for r in failed)
        raise CheckFailed(f"check failed, not published: {reasons}")


def _parity(limit: int, atol: float, min_agreement: float, max_drop: float = ParityConfig.max_drop) -> ParityConfig:
    return ParityConfig(atol=atol, min_agreement=min_agreement, max_drop=max_drop, limit=limit)


@app.command()
def onnx(
    checkpoint: Checkpoint = None,
    out: Out = "",
    opset: Opset = DEFAULT_OPSET,
    static_batch: StaticBatch = 0,
    data: Data = "",
    limit: Limit = 0,
    atol: Atol = ParityConfig.atol,
    min_agreement: MinAgreement = ParityConfig.min_agreement,
) -> None:
    """Export to <arch>.onnx and check it against the checkpoint through cifar_runtime's session."""
    parity = _parity(limit, atol, min_agreement)
    cfg = ExportConfig(out=out, opset=opset, static_batch=static_batch, data=data, parity=parity)
    _export(("onnx",), checkpoint, cfg)


@app.command()
def torchscript(
    checkpoint: Checkpoint = None,
    out: Out = "",
    data: Data = "",
    limit: Limit = 0,
    atol: Atol = ParityConfig.atol,
    min_agreement: MinAgreement = ParityConfig.min_agreement,
) -> None:
    """Export to <arch>.torchscript.pt (scripted) and check it against the checkpoint."""
    cfg = ExportConfig(out=out, data=data, parity=_parity(limit, atol, min_agreement))
    _export(("torchscript",), checkpoint, cfg)


@app.command("all")
def all_formats(
    checkpoint: Checkpoint = None,
    out: Out = "",
    opset: Opset = DEFAULT_OPSET,
    static_batch: StaticBatch = 0,
    data: Data = "",
    limit: Limit = 0,
    atol: Atol = ParityConfig.atol,
    min_agreement: MinAgreement = ParityConfig.min_agreement,
) -> None:
    """Export to ONNX and TorchScript, checking each."""
    parity = _parity(limit, atol, min_agreement)
    cfg = ExportConfig(out=out, opset=opset, static_batch=static_batch, data=data, parity=parity)
    _export(FORMATS, checkpoint, cfg)


@app.command()
def verify(
    model_file: Annotated[Path, typer.Argument(help="An exported .onnx or .torchscript.pt file.")],
    checkpoint: Annotated[
        str, typer.Option("--checkpoint", help="The original. Default: found by the sha256 in the file.")
    ] = "",
    data: Data = "",
    limit: Limit = 0,
    atol: Atol = ParityConfig.atol,
    min_agreement: MinAgreement = ParityConfig.min_agreement,
    max_drop: MaxDrop = ParityConfig.max_drop,
) -> None:
    """Re-run the parity check of an exported file against its original checkpoint."""
    with user_errors():
        parity = _parity(limit, atol, min_agreement, max_drop)
        result = verify_model(model_file, VerifyConfig(checkpoint=checkpoint, data=data, parity=parity))
        console.print(parity_table(model_file.name, result.report))
        console.print(f"original: {result.checkpoint}")
        if not result.same_source:
            console.print("[yellow]note: this checkpoint is not the one the file was exported from (sha256 differs)")
        if not result.report.passed:
            raise CheckFailed(f"{model_file.name} does not match {result.checkpoint}: {result.report.failures[0]}")


@app.command()
def quantize(
    model_file: Annotated[Path, typer.Argument(help="An fp32 .onnx file written by `cifar-export onnx`.")],
    int8: Annotated[
        bool, typer.Option("--int8", help="Static QDQ int8, per-channel, calibrated on real images.")
    ] = False,
    fp16: Annotated[
        bool, typer.Option("--fp16", help="float16 weights (for GPUs); inputs/outputs stay float32.")
    ] = False,
    calibration_count: Annotated[
        int, typer.Option("--calibration-count", help="int8: training images to calibrate on.")
    ] = QuantizeConfig.calibration_count,
    data: Data = "",
    out: Out = "",
    limit: Limit = 0,
    max_drop: MaxDrop = ParityConfig.max_drop,
) -> None:
    """Write <name>.int8.onnx / <name>.fp16.onnx, each with an accuracy report against the fp32 file."""
    precisions = [p for p, on in (("int8", int8), ("fp16", fp16)) if on]
    if not precisions:
        raise typer.BadParameter("pass --int8, --fp16 or both")
    parity = ParityConfig(max_drop=max_drop, limit=limit)
    configs = [QuantizeConfig(p, calibration_count, data=data, out=out, parity=parity) for p in precisions]
    with user_errors():
        _show([quantize_model(model_file, cfg) for cfg in configs])


@app.command()
def bench(
    checkpoint: Annotated[
        Path | None,
        typer.Argument(help="cifar-train checkpoint. Default: seeded random weights of --arch.", show_default=False),
    ] = None,
    arch: Annotated[str, typer.Option("--arch", help="Architecture when no checkpoint is given.")] = "cnn",
    data: Data = "",
    limit: Annotated[int, typer.Option("--limit", help="Test images for top-1 (seeded sample); 0 = all.")] = 1000,
    out: Annotated[
        str, typer.Option("--out", help="Folder for the files and bench.json. Default: runs/bench/<arch>.")
    ] = "",
    latency_runs: Annotated[int, typer.Option("--latency-runs", help="Timed batch-1 calls per engine.")] = 200,
    throughput_batch: Annotated[int, typer.Option("--throughput-batch", help="Batch size for throughput.")] = 256,
    throughput_runs: Annotated[int, typer.Option("--throughput-runs", help="Timed full batches per engine.")] = 5,
    calibration_count: Annotated[
        int, typer.Option("--calibration-count", help="int8: training images to calibrate on.")
    ] = QuantizeConfig.calibration_count,
) -> None:
    """Torch eager, TorchScript, ORT fp32 and int8 (fp16 with a GPU) side by side, each in its own process."""
    cfg = BenchConfig(
        checkpoint=str(checkpoint or ""),
        arch=arch,
        data=data,
        limit=limit,
        out=out,
        latency_runs=latency_runs,
        throughput_batch=throughput_batch,
        throughput_runs=throughput_runs,
        calibration_count=calibration_count,
    )
    with user_errors():
        summary = run_bench(cfg)
        console.print(bench_table(summary))
        for line in ratio_lines(summary):
            console.print(line)
        console.print(f"written {summary['out']}/bench.json")


@app.command("folder-check")
def folder_check(
    model: Annotated[Path | None, typer.Argument(help="ONNX file. Default: the runtime's bundled model.")] = None,
    data: Annotated[Path, typer.Option("--data", help="A labelled split folder: <class>/<images>.")] = Path("data"),
    batch_size: Annotated[int, typer.Option("--batch-size", help="cifar-infer's batch size.")] = 64,
    out: Annotated[
        Path | None, typer.Option("--out", help="Result JSON. Default: folder_check.json beside the model.")
    ] = None,
) -> None:
    """Classify a labelled folder with the real cifar-infer CLI; report accuracy, images/s and peak RSS."""
    out = out or (model.parent if model else Path(".")) / "folder_check.json"
    with user_errors():
        result = check_folder(model, data, out.with_name(out.stem + ".predictions.jsonl"), batch_size)
        write_check(result, out)
    console.print(f"{result.classified}/{result.files} classified, accuracy {result.accuracy:.2f}%, "
                  f"{result.images_per_s:.0f} images/s, peak RSS {result.peak_rss_mb:.0f} MB -> {out}")


@app.command()
def card(
    run: Annotated[Path, typer.Argument(help="A finished run folder with metrics.json and exported files.")],
    bench_file: Annotated[Path | None, typer.Option("--bench", help="bench.json. Default: <run>/bench.json.")] = None,
) -> None:
    """Write <run>/MODEL_CARD.md from the run's metrics, parity reports, bench and folder check."""
    with user_errors():
        console.print(f"written {write_card(run, bench_file)}")
