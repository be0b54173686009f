"""`cifar-export`: a thin Typer layer over the library; each command builds a config and calls one function."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from cifar_export.bench import BenchConfig, run_bench
from cifar_export.card import write_card
from cifar_export.errors import CheckFailed, ExportError, one_line
from cifar_export.export import TRAINED, ExportConfig, ExportResult, export_checkpoint, refuse_overwrite
from cifar_export.folder_check import check_folder, write_check
from cifar_export.formats import FORMATS, ExportOptions
from cifar_export.formats.onnx_export import DEFAULT_OPSET
from cifar_export.parity import ParityConfig
from cifar_export.quantize import QuantizeConfig, quantize_model
from cifar_export.report import bench_table, parity_table, ratio_lines
from cifar_export.source import best_checkpoints
from cifar_export.verify import VerifyConfig, verify_model
from cifar_export.web import WebConfig, build_page
from cifar_runtime import EXIT_INTERRUPTED, CifarRuntimeError
from cifar_train import UserError

app = typer.Typer(
    help="Export cifar-train checkpoints (ONNX, TorchScript, torch.export), prove they match, quantise, benchmark."
    "\n\nExit codes: 0 ok; 2 bad usage or input (missing or corrupt file, wrong architecture, unwritable folder, "
    "bad data, a file that exists without --overwrite); 3 a parity or accuracy check failed (the file is kept as "
    "<name>.FAILED.<ext> and not published); 130 interrupted.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err = Console(stderr=True, soft_wrap=True)

Checkpoint = Annotated[
    Path | None,
    typer.Argument(help="cifar-train checkpoint (.pt). Default: every artifacts/<name>/best.pt.", show_default=False),
]
Out = Annotated[str, typer.Option("--out", help="Folder for the files. Default: beside the input.")]
Data = Annotated[
    str,
    typer.Option(
        "--data",
        help="Real images: an ImageFolder root (train/, test/) or one split folder. Default: the 500 CIFAR-10 "
        "images shipped in this package.",
    ),
]
Limit = Annotated[int, typer.Option("--limit", min=0, help="Use a seeded sample of this many test images; 0 = all.")]
Opset = Annotated[int, typer.Option("--opset", help="ONNX opset (18 or newer).")]
StaticBatch = Annotated[
    int, typer.Option("--static-batch", min=0, help="Fix the ONNX batch axis to N; 0 keeps it dynamic.")
]
Tta = Annotated[
    int,
    typer.Option(
        "--tta",
        min=-1,
        max=2,
        help="Test-time augmentation inside the graph: 0 none, 1 mirror, 2 mirror + "
        "1-pixel shifts; -1 = what the run evaluated with (its reported accuracy).",
    ),
]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Replace files that already exist.", metavar="")]
Raw = Annotated[
    bool,
    typer.Option(
        "--raw",
        metavar="",
        help=(
            "ONNX only: a self-contained <name>.raw.onnx that takes uint8 (N, H, W, 3) RGB pixels, does the scaling, "
            "mean/std and layout change inside the graph, and outputs logits and probabilities."
        ),
    ),
]
Atol = Annotated[float, typer.Option("--atol", min=0.0, help="fp32: largest allowed |logit difference|.")]
MinAgreement = Annotated[
    float, typer.Option("--min-agreement", min=0.0, max=100.0, help="fp32: top-1 agreement required, percent.")
]
MaxDrop = Annotated[
    float, typer.Option("--max-drop", min=0.0, help="fp16/int8: top-1 accuracy the file may lose, percentage points.")
]


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Problems the user can fix become one line on stderr and an exit code; anything else is a bug (a trace)."""
    try:
        yield
    except (ExportError, UserError, CifarRuntimeError) as e:
        err.print(f"[red]error:[/] {escape(one_line(e))}", highlight=False)
        raise typer.Exit(getattr(e, "exit_code", ExportError.exit_code)) from None
    except KeyboardInterrupt:
        err.print("interrupted: nothing was published from the step that was running", highlight=False)
        raise typer.Exit(EXIT_INTERRUPTED) from None


def _show(results: list[ExportResult]) -> None:
    for r in results:
        console.print(parity_table(r.path.name, r.report))
        console.print(
            f"{'published' if r.published else 'NOT published, kept as'} {r.path} (report {r.report_path.name})",
            highlight=False,
        )
    failed = [r for r in results if not r.published]
    if failed:
        reasons = "; ".join(f"{r.path.name}: {r.report.failures[0]}" for r in failed)
        raise CheckFailed(f"check failed, not published: {reasons}")


def export_command(formats: tuple[str, ...], name: str, help_: str) -> None:
    """Register `cifar-export NAME [CHECKPOINT]`: one implementation behind every format's verb and `all`."""

    def command(
        checkpoint: Checkpoint = None,
        out: Out = "",
        opset: Opset = DEFAULT_OPSET,
        static_batch: StaticBatch = 0,
        tta: Tta = TRAINED,
        data: Data = "",
        limit: Limit = 0,
        atol: Atol = ParityConfig.atol,
        min_agreement: MinAgreement = ParityConfig.min_agreement,
        overwrite: Overwrite = False,
        raw: Raw = False,
    ) -> None:
        parity = ParityConfig(atol=atol, min_agreement=min_agreement, limit=limit)
        cfg = ExportConfig(
            out=out,
            options=ExportOptions(opset, static_batch, raw),
            tta=tta,
            data=data,
            parity=parity,
            overwrite=overwrite,
        )
        with user_errors():
            checkpoints = [checkpoint] if checkpoint else best_checkpoints()
            if checkpoint is None:
                console.print(f"no checkpoint given: exporting {', '.join(str(c) for c in checkpoints)}")
            _show([r for c in checkpoints for r in export_checkpoint(c, formats, cfg)])

    command.__doc__ = help_
    app.command(name)(command)


for _fmt in FORMATS.values():
    export_command((_fmt.name,), _fmt.name, f"Export to {_fmt.suffix}: {_fmt.summary}; parity-checked.")
export_command(tuple(FORMATS), "all", f"Export to every format ({', '.join(FORMATS)}), each parity-checked.")


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
        parity = ParityConfig(atol=atol, min_agreement=min_agreement, max_drop=max_drop, limit=limit)
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
        bool, typer.Option("--int8", help="Static QDQ int8, per-channel, calibrated on real images.", metavar="")
    ] = False,
    fp16: Annotated[
        bool, typer.Option("--fp16", help="float16 weights (for GPUs); inputs/outputs stay float32.", metavar="")
    ] = False,
    calibration_count: Annotated[
        int, typer.Option("--calibration-count", min=1, help="int8: training images to calibrate on.")
    ] = QuantizeConfig.calibration_count,
    data: Data = "",
    out: Out = "",
    limit: Limit = 0,
    max_drop: MaxDrop = ParityConfig.max_drop,
    overwrite: Overwrite = False,
) -> None:
    """Write <name>.int8.onnx / <name>.fp16.onnx, each with an accuracy report against the fp32 file."""
    precisions = [p for p, on in (("int8", int8), ("fp16", fp16)) if on]
    if not precisions:
        raise typer.BadParameter("pass --int8, --fp16 or both")
    parity = ParityConfig(max_drop=max_drop, limit=limit)
    configs = [
        QuantizeConfig(p, calibration_count, data=data, out=out, parity=parity, overwrite=overwrite) for p in precisions
    ]
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
    limit: Annotated[
        int, typer.Option("--limit", min=0, help="Test images for top-1 (seeded sample); 0 = all.")
    ] = 1000,
    tta: Tta = TRAINED,
    out: Annotated[
        str, typer.Option("--out", help="Folder for the files and bench.json. Default: runs/bench/<arch>.")
    ] = "",
    latency_runs: Annotated[int, typer.Option("--latency-runs", min=1, help="Timed batch-1 calls per engine.")] = 200,
    throughput_batch: Annotated[
        int, typer.Option("--throughput-batch", min=1, help="Batch size for throughput.")
    ] = 256,
    throughput_runs: Annotated[
        int, typer.Option("--throughput-runs", min=1, help="Timed full batches per engine.")
    ] = 5,
    calibration_count: Annotated[
        int, typer.Option("--calibration-count", min=1, help="int8: training images to calibrate on.")
    ] = QuantizeConfig.calibration_count,
) -> None:
    """Every engine side by side (eager, TorchScript, torch.export, ORT fp32/int8), each in its own process."""
    cfg = BenchConfig(
        checkpoint=str(checkpoint or ""),
        arch=arch,
        tta=tta,
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
    data: Annotated[
        Path,
        typer.Option(
            "--data",
            help="A labelled folder <class>/<images>, or an ImageFolder root (its test/ "
            "split is scored). Class folders must be the model's.",
        ),
    ] = Path("data"),
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="cifar-infer's batch size.")] = 64,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Result JSON. Default: folder_check.<model name>.json beside the "
            "model (folder_check.json for the bundled one).",
            show_default=False,
        ),
    ] = None,
    overwrite: Overwrite = False,
) -> None:
    """Classify a labelled folder with the real cifar-infer CLI; report accuracy, images/s and peak RSS."""
    if out is None:
        out = (
            model.with_name(f"folder_check.{model.name.removesuffix('.onnx')}.json")
            if model
            else Path("folder_check.json")
        )
    with user_errors():
        refuse_overwrite([out], overwrite)
        result = check_folder(model, data, out.with_name(out.stem + ".predictions.jsonl"), batch_size)
        write_check(result, out)
    console.print(
        f"{result.classified}/{result.files} classified, accuracy {result.accuracy:.2f}%, "
        f"{result.images_per_s:.0f} images/s, peak RSS {result.peak_rss_mb:.0f} MB -> {out}"
    )


@app.command()
def card(
    run: Annotated[Path, typer.Argument(help="A finished run folder with metrics.json and exported files.")],
    bench_file: Annotated[Path | None, typer.Option("--bench", help="bench.json. Default: <run>/bench.json.")] = None,
) -> None:
    """Write <run>/MODEL_CARD.md from the run's metrics, parity reports, bench and folder check."""
    with user_errors():
        console.print(f"written {write_card(run, bench_file)}")


@app.command()
def web(
    model_file: Annotated[Path, typer.Argument(help="A self-contained .raw.onnx (`cifar-export onnx CKPT --raw`).")],
    out: Annotated[
        Path | None,
        typer.Option("--out", help="The folder to write. Default: <model>.web beside it.", show_default=False),
    ] = None,
    ort_dist: Annotated[
        Path | None,
        typer.Option(
            "--ort-dist",
            help="onnxruntime-web's dist/ folder. Default: web/node_modules/... of this clone (`npm ci --prefix web`).",
            show_default=False,
        ),
    ] = None,
    overwrite: Overwrite = False,
) -> None:
    """A static page that classifies dropped images in the browser (onnxruntime-web, offline, nothing uploaded)."""
    with user_errors():
        folder = out if out is not None else model_file.with_name(model_file.name.removesuffix(".onnx") + ".web")
        written = build_page(model_file, WebConfig(folder, ort_dist, overwrite))
        console.print(
            f"written {written}: serve it with `python -m http.server -d {written}` and open http://localhost:8000"
        )
