"""`cifar-export`: a thin Typer layer over the library; each command builds a config and calls one function."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from cifar_export import __version__
from cifar_export.config import TRAINED, ExportConfig, QuantizeConfig, VerifyConfig, WebConfig
from cifar_export.errors import CheckFailed, ExportError
from cifar_export.formats import FORMATS, ExportOptions
from cifar_export.formats.onnx_export import DEFAULT_OPSET
from cifar_export.parity import ParityConfig
from cifar_runtime import exit_codes_epilog, user_errors, version_flag

if TYPE_CHECKING:
    from cifar_export.export import ExportResult

# The commands import the work they run (torch, onnx, onnxruntime's quantiser) when they run it: --help and a
# usage error answer at once.
PROG = "cifar-export"
app = typer.Typer(
    help="Export cifar-train checkpoints (ONNX, TorchScript, torch.export), prove they match, quantise. A file "
    "that fails its check is kept as <name>.FAILED.<ext>, not published (exit 3).",
    epilog=exit_codes_epilog(PROG),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
console = Console()


@app.callback()
def main(
    version: Annotated[bool, version_flag(f"cifar-export {__version__}")] = False,
) -> None:
    """Export, prove, quantise."""


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


def _exists(path: Path | None, what: str) -> None:
    """A missing input is refused before torch loads (seconds): the commonest mistake gets the fastest answer."""
    if path is not None and not path.exists():
        raise ExportError(f"{what} {path} does not exist")


def _show(results: list[ExportResult]) -> None:
    from cifar_export.report import parity_table

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
        with user_errors(PROG, "interrupted: nothing was published from the step that was running"):
            _exists(checkpoint, "checkpoint")
            from cifar_export.export import export_checkpoint
            from cifar_export.source import best_checkpoints

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
    with user_errors(PROG):
        _exists(model_file, "model file")
        from cifar_export.report import parity_table
        from cifar_export.verify import verify_model

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
    with user_errors(PROG, "interrupted: nothing was published from the step that was running"):
        _exists(model_file, "model file")
        from cifar_export.quantize import quantize_model

        _show([quantize_model(model_file, cfg) for cfg in configs])


@app.command()
def card(
    run: Annotated[Path, typer.Argument(help="A finished run folder with metrics.json and exported files.")],
    bench_file: Annotated[Path | None, typer.Option("--bench", help="bench.json. Default: <run>/bench.json.")] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="The card to write. Default: <run>/MODEL_CARD.md.", show_default=False)
    ] = None,
) -> None:
    """Write a run's MODEL_CARD.md from its metrics, parity reports, bench, folder checks and ood.json."""
    with user_errors(PROG):
        from cifar_export.card import write_card

        console.print(f"written {write_card(run, bench_file, out)}")


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
    with user_errors(PROG):
        _exists(model_file, "model file")
        from cifar_export.web import build_page

        folder = out if out is not None else model_file.with_name(model_file.name.removesuffix(".onnx") + ".web")
        written = build_page(model_file, WebConfig(folder, ort_dist, overwrite))
        console.print(
            f"written {written}: serve it with `python -m http.server -d {written}` and open http://localhost:8000"
        )
