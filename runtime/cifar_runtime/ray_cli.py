"""`cifar-ray classify PATH... -o OUT`: a thin Typer layer over cifar_runtime.ray_data.

benchmarks/ray.py measures it against cifar-infer.
"""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cifar_runtime.about import version_line
from cifar_runtime.cli import MIN_CONFIDENCE, min_confidence_flag
from cifar_runtime.cliflags import exit_codes_epilog, version_flag
from cifar_runtime.decode import DEFAULT_MAX_PIXELS
from cifar_runtime.errors import CifarRuntimeError, InstallError
from cifar_runtime.exitcodes import EXIT_INTERRUPTED, EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, error_exit_code, say_error
from cifar_runtime.locate import MODEL_HELP
from cifar_runtime.output import RAY_FORMATS
from cifar_runtime.precision import PRECISIONS
from cifar_runtime.text import terminal_safe

if TYPE_CHECKING:
    from cifar_runtime.ray_data import RayConfig

PROG = "cifar-ray"


Precision = StrEnum("Precision", {p: p for p in PRECISIONS if p != "fp16"})  # fp16 runs on CUDA; actors on CPU
Format = StrEnum("Format", {name: name for name in RAY_FORMATS})


app = typer.Typer(add_completion=False, rich_markup_mode=None, pretty_exceptions_enable=False, no_args_is_help=True)

Model = Annotated[Path | None, typer.Option("--model", "-m", help=MODEL_HELP)]
BatchSize = Annotated[int, typer.Option(min=1, help="Images per map_batches call (one ONNX Runtime call).")]
Actors = Annotated[
    int | None,
    typer.Option(min=1, help="Actors, each holding one Classifier [default: autoscale up to the cluster's CPUs]."),
]


@app.callback()
def main(
    version: Annotated[bool, version_flag(version_line())] = False,
) -> None:
    """Batch image classification on a Ray cluster with Ray Data (no torch)."""


@app.command(epilog=exit_codes_epilog(PROG), no_args_is_help=True)
def classify(
    paths: Annotated[
        list[str],
        typer.Argument(help="Image files and folders (walked as cifar-infer walks them), - for stdin, or URIs."),
    ],
    output: Annotated[
        str, typer.Option("--output", "-o", help="jsonl/csv: a local file; parquet: a folder or a URI (s3://...).")
    ],
    fmt: Annotated[Format, typer.Option("--format", "-f", help="Rows as cifar-infer writes them, or Parquet.")] = (
        Format["jsonl"]
    ),
    model: Model = None,
    top_k: Annotated[int, typer.Option("--top-k", "-k", min=1, help="Also list the K most likely classes.")] = 1,
    batch_size: BatchSize = 64,
    precision: Annotated[
        Precision, typer.Option(help="auto: the int8 sibling on CPU when cifar-infer would pick it; see cifar-infer.")
    ] = Precision["auto"],
    max_pixels: Annotated[
        int, typer.Option(min=1, help="Refuse, unread, an image declaring more pixels than this.")
    ] = DEFAULT_MAX_PIXELS,
    exact: Annotated[bool, typer.Option("--exact", help="Decode large JPEGs at full size.")] = False,
    actors: Actors = None,
    cpus_per_actor: Annotated[float, typer.Option(help="CPUs Ray reserves for each actor.")] = 1.0,
    min_confidence: Annotated[str, MIN_CONFIDENCE] = "0",
    address: Annotated[
        str | None,
        typer.Option(help="Ray cluster to join, HEAD_IP:6379 [default: $RAY_ADDRESS, else a local instance]."),
    ] = None,
) -> None:
    """Classify images on a Ray cluster with Ray Data (a local instance when none is given); no torch needed."""
    try:  # imported here, not at the top: `--help` stays fast, and a missing Ray is one line
        from cifar_runtime.ray_data import RayConfig
    except InstallError as e:
        say_error(PROG, e)
        raise typer.Exit(EXIT_USAGE) from None
    cfg = RayConfig(
        model,
        top_k,
        batch_size,
        precision.value,
        max_pixels,
        exact,
        actors,
        cpus_per_actor,
        min_confidence=min_confidence_flag(min_confidence),
    )
    raise typer.Exit(_run(cfg, paths, output, fmt.value, address))


def _run(cfg: RayConfig, paths: list[str], output: str, fmt: str, address: str | None) -> int:
    from cifar_runtime import ray_data

    try:
        started = ray_data.connect(address)
        try:
            summary = ray_data.classify(paths, output, cfg, fmt, sys.stdin)
        finally:
            if started:  # stops a local instance, leaves a cluster; one that was already up is the caller's
                ray_data.ray.shutdown()
    except CifarRuntimeError as e:
        say_error(PROG, e)
        return error_exit_code(e)
    except KeyboardInterrupt as e:
        _say(f"{PROG}: interrupted: {getattr(e, 'rows', 0)} rows written to {output}; run it again to redo them all")
        return EXIT_INTERRUPTED
    _say(f"{PROG}: {summary.line()}")
    return EXIT_PARTIAL if summary.failed else EXIT_OK


def _say(text: str) -> None:
    """One line on stderr for a person: names and messages may hold control characters."""
    typer.echo(terminal_safe(text), err=True)


if __name__ == "__main__":
    app()
