"""Batch inference on Ray Data: `map_batches` over a pool of actors that each hold one `Classifier`. Still no torch.

The input is a Ray Dataset with a `path` column (str, or the bytes of `os.fsencode` for names that are not UTF-8)
and, optionally, a `bytes` column with each file's content, as `ray.data.read_binary_files(include_paths=True)`
makes it. Without `bytes` each actor opens `path` itself, so every node must see the files at the same path.
Each actor runs cifar-infer's own loop (`pipeline.classify_files`) on its batch, and rows go through the runtime's
own `to_row` and writers, so a row here is the row `cifar-infer` writes for the same file; an unreadable file is an
error row, never a failed job. The model file the driver picks (--model, $CIFAR_MODEL or the bundled one, and its
int8 sibling under --precision auto) travels to the actors as bytes.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import os
import socket
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TextIO

import numpy as np

from cifar_runtime.api import Classifier, Prediction, Score
from cifar_runtime.decode import DEFAULT_MAX_PIXELS, DecodeConfig, return_large_frees_to_os
from cifar_runtime.errors import InstallError, Interrupted, OutputError, UsageError, one_line
from cifar_runtime.inputs import IMAGE_SUFFIXES, STDIN, find_images, input_at
from cifar_runtime.interrupts import HeldInterrupts
from cifar_runtime.output import RAY_FORMATS, make_writer, original_path, to_row
from cifar_runtime.pipeline import Result, classify_files
from cifar_runtime.status import Summary

try:
    import pyarrow as pa
    import ray
    import ray.data
    from ray.data import ActorPoolStrategy, Dataset, SaveMode
except ImportError as e:
    raise InstallError(f"cifar_runtime.ray_data needs Ray Data ({e}): pip install 'cifar-runtime[ray]'") from e

BLOCK_ROWS = 1024  # paths per Ray Data block (at most) when this process lists the inputs
MIN_BLOCKS = 16  # ... and at least this many blocks, so a small job still spreads over the actors
CONNECT_TIMEOUT = 10  # seconds to wait for a Ray head node to accept a connection
# The columns of to_row, typed; a column a row lacks (error for a classified file, the rest for a failed one) is null.
SCORE = pa.struct([("label", pa.string()), ("confidence", pa.float64())])
RESULT_SCHEMA = pa.schema(
    [
        ("path", pa.string()),
        ("label", pa.string()),
        ("index", pa.int64()),
        ("confidence", pa.float64()),  # softmax probability, rounded to output.DIGITS decimals
        ("top_k", pa.list_(SCORE)),
        ("abstained", pa.bool_()),  # confidence below --min-confidence
        ("error", pa.string()),
    ]
)


@dataclass(frozen=True)
class RayConfig:
    """Settings of one Ray job; each field is a `cifar-ray classify` flag of the same name (most as in cifar-infer)."""

    model: Path | None = None  # None: $CIFAR_MODEL, else the bundled model
    top_k: int = 1
    batch_size: int = 64  # images per map_batches call, which is one ONNX Runtime call
    precision: str = "auto"  # auto | fp32 | int8: which file of the model runs, picked once by the driver
    max_pixels: int = DEFAULT_MAX_PIXELS  # an image declaring more pixels is refused, unread
    exact: bool = False  # decode JPEGs at full size instead of at reduced scale
    actors: int | None = None  # None: Ray Data's autoscaling pool, from 1 up to what the cluster's CPUs allow
    cpus_per_actor: float = 1.0  # CPUs Ray reserves for each actor (its decoding and its ORT session)
    preserve_order: bool = True  # `classify`: rows in input order, as cifar-infer writes them; False: any order
    min_confidence: float | str = 0.0  # a row below it is marked abstained (as in cifar-infer)


class ClassifyBatch:
    """The map_batches callable: one Classifier per actor, built once, then a batch of inputs -> result rows."""

    def __init__(
        self, model_name: str, model_bytes: bytes, top_k: int, decode: DecodeConfig, min_confidence: float
    ) -> None:
        return_large_frees_to_os()  # as cifar-infer does: the actor owns its heap and decodes many images
        with tempfile.TemporaryDirectory(prefix="cifar-ray-") as tmp:  # ORT reads the file whole when it opens it
            path = Path(tmp) / model_name  # the file's own name, so a message names the model the user gave
            path.write_bytes(model_bytes)
            # Ray gives these actors no GPU
            self.classifier = Classifier(path, "cpu", precision=None, decode=decode, min_confidence=min_confidence)
        self.top_k = top_k

    def __call__(self, batch: dict[str, np.ndarray]) -> pa.Table:
        paths = [os.fsdecode(p) for p in batch["path"]]
        contents = batch.get("bytes")
        # Pillow opens a file object as it opens a file, so bytes decode, and fail, with the messages a path gets
        # (decode.py types its argument as a path; a BinaryIO works the same and could be added to its hint).
        sources = paths if contents is None else [io.BytesIO(content) for content in contents]
        # cifar-infer's own loop, on one batch: the rows are its rows by construction.
        results = classify_files(self.classifier, sources, self.top_k, max(1, len(sources)), workers=1)
        rows = [to_row(replace(result, path=path)) for path, result in zip(paths, results, strict=True)]
        return pa.Table.from_pylist(rows, schema=RESULT_SCHEMA)


def classify_dataset(ds: Dataset, cfg: RayConfig = RayConfig()) -> Dataset:
    """Result rows (RESULT_SCHEMA), one per input row of `ds`; lazy, as every Ray Dataset is."""
    if cfg.batch_size < 1 or (cfg.actors is not None and cfg.actors < 1) or cfg.cpus_per_actor <= 0:
        raise UsageError("--batch-size and --actors must be at least 1, --cpus-per-actor more than 0")
    decode = DecodeConfig(cfg.max_pixels, cfg.exact)
    # The driver picks the file that runs (an int8 sibling with `auto`, as cifar-infer on CPU), and fails here,
    # once, on a bad model or top_k; the actors get that one file's bytes, so no node needs the model on disk.
    chosen = Classifier(
        cfg.model, device="cpu", precision=cfg.precision, decode=decode, min_confidence=cfg.min_confidence
    )
    chosen.check_top_k(cfg.top_k, "--top-k")
    chosen.check_batch_size(cfg.batch_size, "--batch-size")
    model = chosen.model_path
    pool = ActorPoolStrategy(size=cfg.actors) if cfg.actors else ActorPoolStrategy(min_size=1, max_size=None)
    results = ds.map_batches(
        ClassifyBatch,
        # Ray stores them once for all
        fn_constructor_args=(model.name, model.read_bytes(), cfg.top_k, decode, chosen.min_confidence),
        batch_size=cfg.batch_size,
        batch_format="numpy",
        compute=pool,
        num_cpus=cfg.cpus_per_actor,
    )
    return results


def read_inputs(
    inputs: Sequence[str], stdin: TextIO | None = None, output: str | os.PathLike[str] | None = None
) -> tuple[Dataset, list[Result]]:
    """The images `inputs` name, as a Dataset for classify_dataset, and error results for folders that cannot be read;
    UsageError when `output` is one of them.

    Local files and folders (`-`: paths from stdin) are expanded as cifar-infer expands them, and the actors read
    them; URIs (s3://bucket/photos/, gs://, file://) are listed and read by Ray's own `read_binary_files`.
    """
    uris = [arg for arg in inputs if is_uri(arg)]
    if uris and len(uris) < len(inputs):
        raise UsageError("give local paths or URIs (s3://...), not both in one job")
    if uris:
        extensions = sorted(suffix.lstrip(".") for suffix in IMAGE_SUFFIXES)
        return ray.data.read_binary_files(uris, include_paths=True, file_extensions=extensions), []
    found = find_images(inputs, stdin)
    if output is not None and (overwritten := input_at(output, inputs, found.files)) is not None:
        raise UsageError(
            f"--output {output} is one of the inputs ({overwritten}): writing there would destroy it; give another file"
        )
    if not found.files and not found.unreadable:
        names = ", ".join("stdin" if a == STDIN else a for a in inputs[:3]) + (", ..." if len(inputs) > 3 else "")
        raise UsageError(f"no image files found in {names}")
    unreadable = [Result(folder, error=why) for folder, why in found.unreadable]
    paths = pa.table({"path": pa.array([os.fsencode(path) for path in found.files], pa.binary())})
    # Blocks are what Ray hands out to actors: small ones spread a job evenly and keep its end short.
    rows = max(1, min(BLOCK_ROWS, math.ceil(len(paths) / MIN_BLOCKS)))
    return ray.data.from_arrow([paths.slice(start, rows) for start in range(0, max(1, len(paths)), rows)]), unreadable


def is_uri(path: str) -> bool:
    """s3://bucket/key, gs://..., file:///...: read and written by Ray's pyarrow file systems, not by this process."""
    return "://" in path


def classify(
    inputs: Sequence[str],
    output: str | os.PathLike[str],
    cfg: RayConfig = RayConfig(),
    fmt: str = "jsonl",
    stdin: TextIO | None = None,
) -> Summary:
    """Classify files, folders or URIs on the connected Ray cluster (a local one if none), writing `output`.

    jsonl/csv: one local file, written row by row by this process, exactly as `cifar-infer -f jsonl|csv` writes it.
    parquet: a folder of Parquet files (local, or a URI such as s3://bucket/preds/) that Ray's workers write.
    Raises UsageError, ModelError, OutputError (a failed write, or a Ray job that failed) and Interrupted.
    """
    if fmt not in RAY_FORMATS:
        raise UsageError(f"--format must be one of {', '.join(RAY_FORMATS)}, got {fmt!r}")
    if fmt != "parquet" and is_uri(os.fspath(output)):
        raise UsageError(f"{fmt} is written to a local file by this process; for {output} use --format parquet")
    ds, unreadable = read_inputs(inputs, stdin, None if is_uri(os.fspath(output)) else output)
    ds.context.execution_options.preserve_order = cfg.preserve_order  # a Dataset made here: no caller's to change
    uris = any(is_uri(arg) for arg in inputs)
    if uris and cfg.actors and cfg.actors * cfg.cpus_per_actor >= ray.cluster_resources().get("CPU", 0):
        # A fixed pool holding every CPU starves Ray's read tasks, and the job waits for them forever.
        raise UsageError(
            "with URIs, --actors must leave a CPU for Ray's readers: use fewer, or leave it out to autoscale"
        )
    results = classify_dataset(ds, cfg)
    start = time.perf_counter()
    with _job_failures():
        if fmt == "parquet":
            classified, failed = _write_parquet(results, unreadable, os.fspath(output))
        else:
            classified, failed = _write_rows(results, unreadable, Path(output), fmt)
    seconds = time.perf_counter() - start
    return Summary(classified + failed, classified, failed, 0, seconds)


def _write_rows(results: Dataset, unreadable: list[Result], output: Path, fmt: str) -> tuple[int, int]:
    try:
        stream = output.open("w", encoding="utf-8", newline="")
    except OSError as e:
        raise UsageError(f"cannot write {output}: {e.strerror or e}") from e
    written = failed = 0
    try:
        with HeldInterrupts() as held, stream:
            writer = make_writer(fmt, stream, 0)
            writer.begin()
            for result in _results(results, unreadable):
                with held.step():  # so that Ctrl-C never lands between a row's write and its count
                    writer.write(result)
                    written += 1
                    failed += result.prediction is None
            writer.end()
    except KeyboardInterrupt as e:
        raise Interrupted(written) from e
    except OSError as e:
        raise OutputError(f"cannot write {output}: {e.strerror or e}") from e
    return written - failed, failed


def _results(results: Dataset, unreadable: list[Result]) -> Iterator[Result]:
    """The rows of `results` back as Results, so the runtime's own writers render them (unreadable folders first)."""
    yield from unreadable
    for batch in results.iter_batches(batch_size=None, batch_format="pyarrow"):
        for row in batch.to_pylist():
            path = original_path(row["path"])  # the row shows it escaped; the writer escapes it once, again
            if row["error"] is not None:
                yield Result(path, error=row["error"])
                continue
            top_k = tuple(Score(s["label"], s["confidence"]) for s in row["top_k"])
            yield Result(path, Prediction(row["label"], row["index"], row["confidence"], top_k, row["abstained"]))


def _write_parquet(results: Dataset, unreadable: list[Result], output: str) -> tuple[int, int]:
    if unreadable:
        rows = pa.Table.from_pylist([to_row(r) for r in unreadable], schema=RESULT_SCHEMA)
        results = ray.data.from_arrow(rows).union(results)
    try:
        results.write_parquet(output, mode=SaveMode.OVERWRITE)
    except KeyboardInterrupt as e:
        raise Interrupted(0) from e
    except OSError as e:
        raise OutputError(f"cannot write {output}: {e.strerror or e}") from e
    # Count what was written by reading its error column back: nothing is held in memory for the count.
    total = failed = 0
    for batch in ray.data.read_parquet(output, columns=["error"]).iter_batches(batch_format="pyarrow"):
        total += batch.num_rows
        failed += batch.num_rows - batch.column("error").null_count
    return total - failed, failed


@contextlib.contextmanager
def _job_failures() -> Iterator[None]:
    """A Ray job that fails (a node lost beyond Ray's retries, an object that cannot be fetched) is one line."""
    try:
        yield
    except ray.exceptions.RayError as e:
        raise OutputError(f"the Ray job failed, the output is incomplete: {one_line(e)}") from e


def connect(address: str | None = None, num_cpus: int | None = None) -> bool:
    """Join the Ray cluster at `address` (or $RAY_ADDRESS), else start a local one; False if Ray was already up.

    Ray's own chatter (INFO logs, progress bars, worker output) is turned off: the caller prints one summary line.
    """
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address:
        _check_reachable(address)
    local = {} if address else {"num_cpus": num_cpus, "include_dashboard": False}
    try:
        ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False, **local)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise UsageError(f"cannot connect to Ray at {address}: {one_line(e)}") from e
    return True


def _check_reachable(address: str) -> None:
    """UsageError when nothing answers at HOST:PORT (or ray://HOST:PORT): ray.init would retry for minutes."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return  # "auto", "local" and the like: Ray resolves them itself
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT).close()
    except OSError as e:
        raise UsageError(f"cannot connect to Ray at {address}: {e.strerror or e}; is its head node running?") from e
