"""One `cifar-infer` run as a library function: expand paths, skip what --resume finds done, classify in
batches, stream each row to the output, report progress; the CLI only parses flags and sets exit codes.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from cifar_runtime.api import Classifier
from cifar_runtime.errors import UsageError
from cifar_runtime.inputs import find_images
from cifar_runtime.output import FORMATS, display_path, done_paths, make_writer
from cifar_runtime.pipeline import Result, classify_files
from cifar_runtime.status import Progress, Summary

DEFAULT_WORKERS = min(4, os.cpu_count() or 1)  # decoding threads; more only compete with ORT for cores


@dataclass(frozen=True)
class InferConfig:
    """Settings of one run; each field is a `cifar-infer` flag of the same name."""

    model: Path | None = None  # None: $CIFAR_MODEL, else the bundled model
    device: str = "auto"  # auto | cpu | cuda
    top_k: int = 1
    format: str = "table"  # table | json | jsonl | csv
    output: Path | None = None  # None: stdout
    batch_size: int = 64  # images per ONNX Runtime call
    workers: int = DEFAULT_WORKERS
    resume: bool = False  # skip paths already in `output` and append to it


def infer_files(cfg: InferConfig, args: Sequence[str], stdin: TextIO, stdout: TextIO, stderr: TextIO) -> Summary:
    """Classify the image files and folders in `args` (`-`: paths from stdin), writing one row per file."""
    _check(cfg)
    done = done_paths(cfg.output, cfg.format) if cfg.resume and cfg.output else set()
    classifier = Classifier(cfg.model, cfg.device)
    classifier.check_top_k(cfg.top_k)
    inputs = find_images(args, stdin)
    unreadable = [Result(f, error=why) for f, why in inputs.unreadable if display_path(f) not in done]
    todo = [path for path in inputs.files if display_path(path) not in done]
    skipped = len(inputs.files) + len(inputs.unreadable) - len(todo) - len(unreadable)
    # A bar for folders, on a terminal, unless rows are printed to that terminal too (then they are the progress).
    to_terminal = cfg.output is None and stdout.isatty()
    progress = Progress(len(todo), stderr, enabled=inputs.walked and stderr.isatty() and not to_terminal)
    classified = failed = 0
    start = time.perf_counter()
    with _open_output(cfg, stdout) as stream:
        appending = stream is not stdout and stream.tell() > 0
        writer = make_writer(cfg.format, stream, max(map(len, classifier.classes)), header=not appending)
        writer.begin()
        for result in unreadable:
            writer.write(result)
        results = classify_files(classifier, todo, cfg.top_k, cfg.batch_size, cfg.workers)
        for n, result in enumerate(results, 1):
            writer.write(result)
            classified += result.prediction is not None
            failed += result.prediction is None
            progress.update(n)
        writer.end()
    progress.close()
    seconds = time.perf_counter() - start
    return Summary(len(todo) + len(unreadable), classified, failed + len(unreadable), skipped, seconds)


def _check(cfg: InferConfig) -> None:
    if cfg.format not in FORMATS:
        raise UsageError(f"--format must be one of {', '.join(FORMATS)}, got {cfg.format!r}")
    if cfg.resume and cfg.output is None:
        raise UsageError("--resume needs --output FILE: it skips the files already written there")
    if cfg.batch_size < 1 or cfg.workers < 1:
        raise UsageError("--batch-size and --workers must be at least 1")


@contextlib.contextmanager
def _open_output(cfg: InferConfig, stdout: TextIO) -> Iterator[TextIO]:
    if cfg.output is None:
        yield stdout
        return
    try:
        stream = cfg.output.open("a" if cfg.resume else "w", encoding="utf-8", newline="")
    except OSError as e:
        raise UsageError(f"cannot write {cfg.output}: {e.strerror or e}") from e
    with stream:
        yield stream
