"""`cifar-infer serve`: the flags of the HTTP service (cifar_runtime.serve), read by cifar-infer when its first
argument is `serve` (a file named serve is still classified as ./serve)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cifar_runtime.cli import MIN_CONFIDENCE, Precision, min_confidence_flag
from cifar_runtime.cliflags import exit_codes_epilog
from cifar_runtime.decode import DEFAULT_MAX_PIXELS
from cifar_runtime.errors import CifarRuntimeError
from cifar_runtime.exitcodes import EXIT_USAGE, error_exit_code, say_error
from cifar_runtime.locate import MODEL_HELP

PROG = "cifar-infer serve"
app = typer.Typer(add_completion=False, rich_markup_mode=None, pretty_exceptions_enable=False)


@app.command(epilog=exit_codes_epilog("cifar-infer"))
def serve(
    model: Annotated[Path | None, typer.Option("--model", "-m", help=MODEL_HELP)] = None,
    precision: Annotated[Precision, typer.Option(help="As cifar-infer's; the service runs on CPU.")] = Precision[
        "auto"
    ],
    host: Annotated[str, typer.Option(help="Address to bind; 0.0.0.0 serves other machines too.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535)] = 8000,
    threads: Annotated[int, typer.Option(min=0, help="ONNX Runtime threads of the one session (0: one per core).")] = 2,
    workers: Annotated[int, typer.Option(min=1, help="Image-decoding threads.")] = 2,
    max_batch: Annotated[int, typer.Option(min=1, help="Images run together at most; 1 turns batching off.")] = 32,
    max_delay_ms: Annotated[
        float, typer.Option(min=0, help="How long a batch's first image waits for images still being decoded.")
    ] = 2.0,
    queue: Annotated[int, typer.Option(min=1, help="Images accepted and not yet answered; beyond: 429.")] = 256,
    max_body_mb: Annotated[float, typer.Option(min=0.001, help="A request body beyond this: 413.")] = 16.0,
    max_files: Annotated[int, typer.Option(min=1, help="Images in one request, at most.")] = 64,
    max_pixels: Annotated[int, typer.Option(min=1, help="An image declaring more pixels is refused.")] = (
        DEFAULT_MAX_PIXELS
    ),
    deadline_s: Annotated[float, typer.Option(min=0.001, help="A request not answered by then: 504.")] = 10.0,
    grace_s: Annotated[float, typer.Option(min=0, help="After SIGTERM, time given to accepted requests.")] = 10.0,
    top_k: Annotated[int, typer.Option("--top-k", "-k", min=1, help="Default top-k; ?top_k=K per request.")] = 1,
    min_confidence: Annotated[str, MIN_CONFIDENCE] = "0",
    token_file: Annotated[
        Path | None, typer.Option(help="A file holding the bearer token requests must send (Authorization).")
    ] = None,
    cors_origin: Annotated[str, typer.Option(help="Allow this browser origin (no CORS headers by default).")] = "",
) -> None:
    """Serve the model over HTTP: POST /v1/classify, GET /v1/model /livez /readyz /metrics /openapi.json."""
    try:
        from cifar_runtime.serve import ServeConfig
        from cifar_runtime.serve import serve as run_service

        token = token_file.read_text(encoding="utf-8").strip() if token_file else ""
        cfg = ServeConfig(
            model,
            precision.value,
            host,
            port,
            threads,
            workers,
            max_batch,
            max_delay_ms,
            queue,
            max_body_mb,
            max_files,
            max_pixels,
            deadline_s,
            grace_s,
            top_k,
            min_confidence_flag(min_confidence),
            token,
            cors_origin,
        )
        code = run_service(cfg, lambda line: typer.echo(line, err=True))
    except CifarRuntimeError as e:
        say_error(PROG, e)
        raise typer.Exit(error_exit_code(e)) from None
    except OSError as e:  # the port is taken, the token file unreadable
        say_error(PROG, e)
        raise typer.Exit(EXIT_USAGE) from None
    raise typer.Exit(code)
