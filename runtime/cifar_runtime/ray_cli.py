"""`cifar-ray classify PATH... -o OUT` and `cifar-ray bench FOLDER`: a thin Typer layer over cifar_runtime.ray_data.

`bench` runs `cifar-infer` and `cifar-ray classify` on the same folder, each as its own process tree, and reports
images/s and the peak memory of the whole job (the driver, Ray's daemons and every worker), sampled while it runs.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cifar_runtime.cli import EPILOG, MIN_CONFIDENCE, min_confidence_flag
from cifar_runtime.decode import DEFAULT_MAX_PIXELS
from cifar_runtime.errors import CifarRuntimeError, InstallError
from cifar_runtime.exitcodes import EXIT_INTERRUPTED, EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, error_exit_code
from cifar_runtime.locate import ENV_VAR
from cifar_runtime.output import RAY_FORMATS
from cifar_runtime.precision import PRECISIONS
from cifar_runtime.text import terminal_safe

if TYPE_CHECKING:
    from cifar_runtime.ray_data import RayConfig

PROG = "cifar-ray"
SAMPLE_EVERY = 0.1  # seconds between memory samples in `bench`
MIB = 2**20


Precision = StrEnum("Precision", {p: p for p in PRECISIONS if p != "fp16"})  # fp16 runs on CUDA; actors on CPU
Format = StrEnum("Format", {name: name for name in RAY_FORMATS})


app = typer.Typer(add_completion=False, rich_markup_mode=None, pretty_exceptions_enable=False, no_args_is_help=True)

Model = Annotated[
    Path | None, typer.Option("--model", "-m", help=f"ONNX model file [default: ${ENV_VAR}, else the bundled model]")
]
BatchSize = Annotated[int, typer.Option(min=1, help="Images per map_batches call (one ONNX Runtime call).")]
Actors = Annotated[
    int | None,
    typer.Option(min=1, help="Actors, each holding one Classifier [default: autoscale up to the cluster's CPUs]."),
]


@app.command(epilog=EPILOG, no_args_is_help=True)
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
        _say(f"{PROG}: error: {e}")
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
        _say(f"{PROG}: error: {e}")
        return error_exit_code(e)
    except KeyboardInterrupt as e:
        _say(f"{PROG}: interrupted: {getattr(e, 'rows', 0)} rows written to {output}; run it again to redo them all")
        return EXIT_INTERRUPTED
    _say(f"{PROG}: {summary.line()}")
    return EXIT_PARTIAL if summary.failed else EXIT_OK


@dataclass(frozen=True)
class Measured:
    """One command of the benchmark, run to its end."""

    seconds: float  # wall time, process start to exit (Ray's start-up included)
    rate: float  # images/s as the command's own summary line reports it (classification only)
    peak_rss: int  # bytes: the largest sum of RSS over the process tree seen (counts shared pages once per process)
    peak_pss: int  # bytes: the same with shared pages divided among their processes: the honest total


@app.command()
def bench(
    folder: Annotated[Path, typer.Argument(help="A folder of images, e.g. the 10k CIFAR-10 test set.")],
    model: Model = None,
    batch_size: BatchSize = 64,
    actors: Actors = None,
) -> None:
    """Time cifar-infer and cifar-ray classify on FOLDER: images/s and peak memory of each whole job."""
    try:
        import psutil  # noqa: F401  (in the [ray] extra; only the benchmark needs it)
    except ImportError:
        _say(f"{PROG}: error: bench needs psutil: pip install 'cifar-runtime[ray]'")
        raise typer.Exit(EXIT_USAGE) from None
    common = [str(folder), "--batch-size", str(batch_size), *(["--model", str(model)] if model else [])]
    with tempfile.TemporaryDirectory(prefix="cifar-ray-bench-") as tmp:
        outs = {name: Path(tmp) / f"{name}.jsonl" for name in ("cifar-infer", "cifar-ray")}
        ray_flags = ["--actors", str(actors)] if actors else []
        commands = {
            "cifar-infer": ["cifar_runtime", *common, "-f", "jsonl", "-o", str(outs["cifar-infer"])],
            "cifar-ray": ["cifar_runtime.ray_cli", "classify", *common, *ray_flags, "-o", str(outs["cifar-ray"])],
        }
        results = {name: measure(name, args, Path(tmp) / f"{name}.log") for name, args in commands.items()}
        rows = {name: _labels(out) for name, out in outs.items()}
    typer.echo(f"{'':<12} {'images':>7} {'wall s':>7} {'img/s':>7} {'img/s run':>9} {'peak RSS':>10} {'peak PSS':>10}")
    for name, m in results.items():
        n = len(rows[name])
        typer.echo(
            f"{name:<12} {n:>7} {m.seconds:>7.1f} {n / m.seconds:>7.0f} {m.rate:>9.0f} "
            f"{m.peak_rss / MIB:>6.0f} MiB {m.peak_pss / MIB:>6.0f} MiB"
        )
    a, b = rows["cifar-infer"], rows["cifar-ray"]
    same = sum(a[p][0] == b.get(p, (None,))[0] for p in a)
    drift = max((abs(a[p][1] - b[p][1]) for p in a if p in b and a[p][1] is not None), default=0.0)
    typer.echo(f"labels agree on {same}/{len(a)} files; largest confidence difference {drift:.6f}")
    raise typer.Exit(EXIT_OK if same == len(a) == len(b) else EXIT_PARTIAL)


def measure(name: str, module_args: list[str], log: Path) -> Measured:
    """Run `python -m MODULE ARGS...` to its end, sampling the memory of its whole process tree; it must exit 0."""
    import psutil

    start = time.perf_counter()
    peak_rss = peak_pss = 0
    with log.open("w") as stderr:
        command = [sys.executable, "-m", *module_args]
        root = psutil.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr, stdin=subprocess.DEVNULL)
        while root.poll() is None:
            rss = pss = 0
            for p in [root, *root.children(recursive=True)]:
                try:
                    info = p.memory_full_info()
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue  # a process that ended between listing and reading
                rss, pss = rss + info.rss, pss + info.pss
            peak_rss, peak_pss = max(peak_rss, rss), max(peak_pss, pss)
            time.sleep(SAMPLE_EVERY)
    seconds = time.perf_counter() - start
    text = log.read_text(encoding="utf-8", errors="replace")
    if root.returncode != 0:
        raise typer.BadParameter(f"{name} exited {root.returncode}: {text.strip()[-300:]}")
    rates = re.findall(r"([\d.]+) images/s", text)
    return Measured(seconds, float(rates[-1]) if rates else 0.0, peak_rss, peak_pss)


def _labels(jsonl: Path) -> dict[str, tuple[str | None, float | None]]:
    rows = (json.loads(line) for line in jsonl.read_text(encoding="utf-8").splitlines())
    return {row["path"]: (row.get("label"), row.get("confidence")) for row in rows}


def _say(text: str) -> None:
    """One line on stderr for a person: names and messages may hold control characters."""
    typer.echo(terminal_safe(text), err=True)


if __name__ == "__main__":
    app()
