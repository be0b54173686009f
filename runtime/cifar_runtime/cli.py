"""`cifar-infer PATH...`: a thin Typer layer over `infer_files`; errors become one line and an exit code."""

from __future__ import annotations

import os
import shlex
import sys
import warnings
from dataclasses import fields
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from cifar_runtime.about import model_lines, runtime_lines, version_line
from cifar_runtime.api import RECOMMENDED
from cifar_runtime.cliflags import exit_codes_epilog, version_flag
from cifar_runtime.decode import DEFAULT_MAX_PIXELS, return_large_frees_to_os
from cifar_runtime.errors import CifarRuntimeError, ReaderGone, UsageError
from cifar_runtime.exitcodes import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_PARTIAL,
    EXIT_USAGE,
    error_exit_code,
    say_error,
)
from cifar_runtime.infer import DEFAULT_WORKERS, InferConfig, infer_files
from cifar_runtime.inputs import STDIN
from cifar_runtime.locate import ENV_VAR, MODEL_HELP
from cifar_runtime.output import FORMATS, RESUMABLE
from cifar_runtime.precision import AUTO_MAX_DROP, PRECISIONS
from cifar_runtime.session import DEVICES, quiet_ort_logs
from cifar_runtime.shard import Shard
from cifar_runtime.text import terminal_safe

PROG = "cifar-infer"
EPILOG = f"""{exit_codes_epilog(PROG)}

\b
Environment:
  {ENV_VAR}  model file to use when --model is not given
"""


# The choices come from the modules that own them (declared once there); Typer shows them in --help.
Precision = StrEnum("Precision", {name: name for name in PRECISIONS})
Format = StrEnum("Format", {name: name for name in FORMATS})


app = typer.Typer(add_completion=False, rich_markup_mode=None, pretty_exceptions_enable=False)
MIN_CONFIDENCE = typer.Option(
    "--min-confidence",
    metavar="P",
    help='Mark a file whose confidence is below P (0 to 1) as abstained: its row says "abstained": true and the '
    "summary counts it. 'recommended': the threshold the model records (chosen on validation for 99%% accuracy of "
    "the accepted files; see --info).",
)


def min_confidence_flag(text: str) -> float | str:
    """--min-confidence as the Classifier takes it: 'recommended', a number, or nan (refused there, in one line)."""
    if text == RECOMMENDED:
        return text
    try:
        return float(text)
    except ValueError:
        return float("nan")


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
        typer.Option("--model", "-m", help=MODEL_HELP),
    ] = None,
    device: Annotated[
        str, typer.Option(help=f"{' | '.join(DEVICES)}: auto takes CUDA if it really loads, else CPU.")
    ] = "auto",
    top_k: Annotated[
        int,
        typer.Option(
            "--top-k",
            "-k",
            min=1,
            help="Also list the K most likely classes; at most the model's number of classes, a larger K is refused.",
        ),
    ] = 1,
    fmt: Annotated[
        Format,
        typer.Option(
            "--format",
            "-f",
            help="jsonl/csv: one row per file, streamed; json/table files are written whole at the end.",
        ),
    ] = Format["table"],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write rows to this file instead of stdout (-: stdout).")
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Images per ONNX Runtime call.")] = 64,
    workers: Annotated[int, typer.Option(min=1, help="Image decoding threads.")] = DEFAULT_WORKERS,
    resume: Annotated[
        bool, typer.Option(help="With --output (jsonl/csv): skip files classified in it, retry its errors, append.")
    ] = False,
    shard: Annotated[
        str | None,
        typer.Option(
            metavar="K/N",
            help="Classify only part K of N (K from 0) of the inputs, chosen by a hash of each path; see the README.",
            show_default=False,
        ),
    ] = None,
    precision: Annotated[
        Precision,
        typer.Option(
            help=f"auto: the model's int8 sibling on CPU when its recorded accuracy drop is <= {AUTO_MAX_DROP} points, "
            "else fp32; fp32 / int8 / fp16 (CUDA only): that sibling file (NAME.onnx, NAME.int8.onnx, NAME.fp16.onnx)."
        ),
    ] = Precision["auto"],
    max_pixels: Annotated[
        int,
        typer.Option(
            min=1,
            help="Refuse, unread, any image declaring more pixels (width x height); it gets an error row. "
            "Images decoded at once share this many pixels.",
        ),
    ] = DEFAULT_MAX_PIXELS,
    exact: Annotated[
        bool,
        typer.Option(
            "--exact", help="Decode large JPEGs at full size (slower, more memory) instead of at 1/2 to 1/8 scale."
        ),
    ] = False,
    min_confidence: Annotated[str, MIN_CONFIDENCE] = "0",
    info: Annotated[bool, typer.Option("--info", help="Show onnxruntime, providers and model metadata.")] = False,
    version: Annotated[
        bool,
        version_flag(version_line()),
    ] = False,
) -> None:
    """Classify images with a CIFAR model on ONNX Runtime (no torch needed)."""
    try:
        part = Shard.parse(shard) if shard is not None else None
    except UsageError as e:
        say_error(PROG, e)
        raise typer.Exit(EXIT_USAGE) from None
    cfg = InferConfig(
        model=model,
        device=device,
        top_k=top_k,
        format=fmt.value,
        output=None if output == Path("-") else output,
        batch_size=batch_size,
        workers=workers,
        resume=resume,
        shard=part,
        precision=precision.value,
        max_pixels=max_pixels,
        exact=exact,
        min_confidence=min_confidence_flag(min_confidence),
    )
    with warnings.catch_warnings():  # restored on return, so CliRunner tests leave no trace
        warnings.showwarning = _one_line_warning
        code = _run(cfg, paths or [], info)
    raise typer.Exit(code)


def _run(cfg: InferConfig, paths: list[str], info: bool) -> int:
    try:
        quiet_ort_logs()  # ORT's own multi-line warnings would duplicate our one-line ones
        return_large_frees_to_os()  # this process owns the heap: keep a freed large image from staying resident
        if info:
            for line in runtime_lines() + model_lines(cfg.classifier()):
                _say(line, err=False)
            return EXIT_OK
        if not paths:
            raise typer.BadParameter("give an image file or folder, or - for stdin", param_hint="PATHS")
        summary = infer_files(cfg, paths, sys.stdin, sys.stdout, sys.stderr)
    except ReaderGone as e:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python's flush at exit would fail again
        return error_exit_code(e)
    except CifarRuntimeError as e:
        say_error(PROG, e)
        return error_exit_code(e)
    except KeyboardInterrupt as e:  # infer_files raises Interrupted, which knows the rows; earlier: none
        _say(f"{PROG}: {interrupted_line(cfg, paths, getattr(e, 'rows', 0))}")
        return EXIT_INTERRUPTED
    _say(f"{PROG}: {summary.line()}")
    return EXIT_PARTIAL if summary.failed else EXIT_OK


def interrupted_line(cfg: InferConfig, paths: list[str], rows: int) -> str:
    """What Ctrl-C leaves behind and how to go on, in one line."""
    where = cfg.output or "stdout"
    if cfg.output is None or cfg.format not in RESUMABLE:
        return f"interrupted: {rows} rows written to {where}; only --format jsonl or csv with --output can --resume"
    stdin = " (with the same paths on stdin)" if STDIN in paths else ""
    return f"interrupted: {rows} rows written to {where}; to continue: {resume_command(cfg, paths)}{stdin}"


def resume_command(cfg: InferConfig, paths: list[str]) -> str:
    """The command that continues `cfg` on `paths`: every setting that is not a default, then --resume."""
    args = [PROG]
    default = InferConfig()
    for field in fields(InferConfig):
        value = getattr(cfg, field.name)
        flag = f"--{field.name.replace('_', '-')}"
        if field.name != "resume" and value != getattr(default, field.name):
            args += [flag] if value is True else [flag, str(value)]  # a switch (--exact) takes no value
    dashes = ["--"] if any(p.startswith("-") and p != STDIN for p in paths) else []  # a file named -x.jpg
    return shlex.join([*args, "--resume", *dashes, *paths])


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


def entry() -> None:
    """The console script: `cifar-infer serve ...` runs the service, anything else classifies."""
    if sys.argv[1:2] == ["serve"]:
        from cifar_runtime.serve_cli import app as serve_app

        serve_app(args=sys.argv[2:], prog_name="cifar-infer serve")
    app(prog_name="cifar-infer")
