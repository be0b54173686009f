"""`cifar-infer PATH...`: a thin Typer layer over `infer_files`; errors become one line and an exit code."""

from __future__ import annotations

import sys
import warnings
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from PIL import Image

from cifar_runtime.about import model_lines, runtime_lines, version_line
from cifar_runtime.api import Classifier
from cifar_runtime.errors import CifarRuntimeError
from cifar_runtime.infer import DEFAULT_WORKERS, InferConfig, infer_files
from cifar_runtime.locate import ENV_VAR
from cifar_runtime.session import quiet_ort_logs
from cifar_runtime.text import terminal_safe

PROG = "cifar-infer"
EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE = 0, 1, 2
EPILOG = f"""\b
Exit codes:
  0  every input file was classified
  1  some inputs could not be read: each has an error row, all others were classified and written
  2  usage error: bad flags, missing or unloadable model
\b
Environment:
  {ENV_VAR}  model file to use when --model is not given
"""


class Device(StrEnum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class Format(StrEnum):
    table = "table"
    json = "json"
    jsonl = "jsonl"
    csv = "csv"


app = typer.Typer(add_completion=False, rich_markup_mode=None, pretty_exceptions_enable=False)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(version_line())
        raise typer.Exit(EXIT_OK)


@app.command(epilog=EPILOG, no_args_is_help=True)
def main(
    paths: Annotated[
        list[str] | None,
        typer.Argument(
            help="Image files and folders (walked recursively); - reads paths from stdin.", show_default=False
        ),
    ] = None,
    model: Annotated[
        Path | None,
        typer.Option("--model", "-m", help=f"ONNX model file [default: ${ENV_VAR}, else the bundled model]"),
    ] = None,
    device: Annotated[Device, typer.Option(help="auto: CUDA if it really loads, else CPU.")] = Device.auto,
    top_k: Annotated[int, typer.Option("--top-k", "-k", min=1, help="Also list the K most likely classes.")] = 1,
    fmt: Annotated[
        Format, typer.Option("--format", "-f", help="jsonl/csv: one row per file, streamed.")
    ] = Format.table,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write rows here instead of stdout.")] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Images per ONNX Runtime call.")] = 64,
    workers: Annotated[int, typer.Option(min=1, help="Image decoding threads.")] = DEFAULT_WORKERS,
    resume: Annotated[bool, typer.Option(help="With --output (jsonl/csv): skip files already in it, append.")] = False,
    info: Annotated[bool, typer.Option("--info", help="Show onnxruntime, providers and model metadata.")] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Show versions and exit."),
    ] = False,
) -> None:
    """Classify images with a CIFAR model on ONNX Runtime (no torch needed)."""
    cfg = InferConfig(model, device.value, top_k, fmt.value, output, batch_size, workers, resume)
    with warnings.catch_warnings():  # restored on return, so CliRunner tests leave no trace
        warnings.showwarning = _one_line_warning
        # Pillow warns (rather than refuses) between 1x and 2x its pixel limit; refuse those too.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        code = _run(cfg, paths or [], info)
    raise typer.Exit(code)


def _run(cfg: InferConfig, paths: list[str], info: bool) -> int:
    try:
        quiet_ort_logs()  # ORT's own multi-line warnings would duplicate our one-line ones
        if info:
            for line in runtime_lines() + model_lines(Classifier(cfg.model, cfg.device)):
                _say(line, err=False)
            return EXIT_OK
        if not paths:
            raise typer.BadParameter("give an image file or folder, or - for stdin", param_hint="PATHS")
        summary = infer_files(cfg, paths, sys.stdin, sys.stdout, sys.stderr)
    except CifarRuntimeError as e:
        _say(f"{PROG}: error: {e}")
        return EXIT_USAGE
    if summary.files == 0 and not summary.skipped:
        _say(f"{PROG}: warning: no image files found")
    _say(f"{PROG}: {summary.line()}")
    return EXIT_SOME_FAILED if summary.failed else EXIT_OK


def _one_line_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: object = None,
    line: object = None,
) -> None:
    _say(f"{PROG}: warning: {message}")


def _say(text: str, err: bool = True) -> None:
    """Print one line for a person: file names, class names and messages may hold control characters."""
    typer.echo(terminal_safe(text), err=err)
