"""One `cifar-infer` run as a library function: expand paths, skip what --resume finds done, classify in
batches, stream each row to the output, report progress; the CLI only parses flags and sets exit codes.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import itertools
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from cifar_runtime.api import Classifier
from cifar_runtime.atomic import atomic_write, replaceable
from cifar_runtime.decode import DEFAULT_MAX_PIXELS, DecodeConfig
from cifar_runtime.errors import Interrupted, OutputError, ReaderGone, UsageError
from cifar_runtime.inputs import STDIN, find_images, input_at
from cifar_runtime.interrupts import HeldInterrupts
from cifar_runtime.output import FORMATS, RESUMABLE, display_path, make_writer
from cifar_runtime.pipeline import Result, classify_files
from cifar_runtime.resume import Resume, check_settings, read_resume, write_settings
from cifar_runtime.shard import Shard
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
    resume: bool = False  # skip paths already classified in `output`, retry its error rows, append
    shard: Shard | None = None  # classify only this shard's part of the inputs
    precision: str = "auto"  # auto | fp32 | int8 | fp16: which file of the model runs (cifar_runtime.precision)
    max_pixels: int = DEFAULT_MAX_PIXELS  # an image declaring more pixels is refused, unread
    exact: bool = False  # decode JPEGs at full size instead of at reduced scale
    min_confidence: float | str = 0.0  # a row below it is marked abstained; "recommended": the file's threshold

    def classifier(self) -> Classifier:
        """The Classifier these settings describe."""
        decode = DecodeConfig(self.max_pixels, self.exact)
        return Classifier(
            self.model, self.device, precision=self.precision, decode=decode, min_confidence=self.min_confidence
        )


def infer_files(cfg: InferConfig, args: Sequence[str], stdin: TextIO, stdout: TextIO, stderr: TextIO) -> Summary:
    """Classify the image files and folders in `args` (`-`: paths from stdin), writing one row per file.

    Raises UsageError when nothing is found, OutputError when rows cannot be written, and Interrupted (a
    KeyboardInterrupt) on Ctrl-C, saying how many rows reached the output for good.
    """
    _check(cfg)
    classifier = cfg.classifier()
    classifier.check_top_k(cfg.top_k, "--top-k")
    classifier.check_batch_size(cfg.batch_size, "--batch-size")
    missing = [a for a in args if a != STDIN and not os.path.lexists(a)]
    if missing and len(missing) == len(args):  # a typo, not a folder with some bad files: nothing to classify
        raise UsageError(
            f"no such file or folder: {missing[0]}" + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
        )
    inputs = find_images(args, stdin, cfg.shard)
    if not inputs.found:  # an empty shard of a non-empty job is fine: it has nothing to do
        names = ", ".join("stdin" if a == STDIN else a for a in args[:3]) + (", ..." if len(args) > 3 else "")
        raise UsageError(f"no image files found in {names}")
    overwritten = input_at(cfg.output, args, inputs.files) if cfg.output is not None else None
    if overwritten is not None:
        raise UsageError(
            f"--output {cfg.output} is one of the inputs ({overwritten}): writing there would destroy "
            "it; give another file"
        )
    # Read before the output is opened: resuming cleans the file, and a failure here must leave it as it was.
    shown = {display_path(path) for path in inputs.files} | {display_path(f) for f, _ in inputs.unreadable}
    settings = run_settings(cfg, classifier)
    if cfg.resume and cfg.output:
        check_settings(cfg.output, settings)
    earlier = read_resume(cfg.output, cfg.format, shown) if cfg.resume and cfg.output else Resume()
    if cfg.output is not None and cfg.format in RESUMABLE and replaceable(cfg.output):
        write_settings(cfg.output, settings)
    unreadable = [Result(f, error=why) for f, why in inputs.unreadable if display_path(f) not in earlier.done]
    todo = [path for path in inputs.files if display_path(path) not in earlier.done]
    skipped = len(inputs.files) + len(inputs.unreadable) - len(todo) - len(unreadable)
    # A bar for folders, on a terminal, unless rows are printed to that terminal too (then they are the progress).
    to_terminal = cfg.output is None and stdout.isatty()
    progress = Progress(len(unreadable) + len(todo), stderr, inputs.walked and stderr.isatty() and not to_terminal)
    classified = failed = abstained = 0
    start = time.perf_counter()
    try:
        with HeldInterrupts() as held, _open_output(cfg, stdout) as stream:
            appending = stream is not stdout and stream.tell() > 0
            writer = make_writer(cfg.format, stream, max(map(len, classifier.classes)), header=not appending)
            writer.begin()
            results = classify_files(classifier, todo, cfg.top_k, cfg.batch_size, cfg.workers)
            for n, result in enumerate(itertools.chain(unreadable, results), 1):
                with held.step():  # so that Ctrl-C never lands between a row's write and its count
                    writer.write(result)
                    classified += result.prediction is not None
                    failed += result.prediction is None
                    abstained += result.prediction is not None and result.prediction.abstained
                progress.update(n)
            writer.end()
    except KeyboardInterrupt as e:
        # Rows streamed to stdout or to a jsonl/csv file are there for good; a whole-file output is not written.
        streamed = cfg.output is None or cfg.format in RESUMABLE or not replaceable(cfg.output)
        raise Interrupted(classified + failed if streamed else 0) from e
    except OSError as e:  # reads fail inside the pipeline, as error rows: what reaches here is a failed write
        if cfg.output is None and e.errno == errno.EPIPE:
            raise ReaderGone("stdout was closed by its reader") from e
        raise OutputError(f"cannot write {cfg.output or 'stdout'}: {e.strerror or e}") from e
    finally:
        progress.close()
    seconds = time.perf_counter() - start
    files = len(todo) + len(unreadable)
    return Summary(files, classified, failed, skipped, seconds, retried=earlier.retried, abstained=abstained)


def run_settings(cfg: InferConfig, classifier: Classifier) -> dict[str, object]:
    """What decides the content of a row, as --resume compares it: the model file that runs and the flags."""
    digest = hashlib.sha256(classifier.model_path.read_bytes()).hexdigest()
    return {
        "model": classifier.model_path.name,
        "model_sha256": digest,
        "top_k": cfg.top_k,
        "min_confidence": classifier.min_confidence,
        "exact": cfg.exact,
        "format": cfg.format,
    }


def _check(cfg: InferConfig) -> None:
    if cfg.format not in FORMATS:
        raise UsageError(f"--format must be one of {', '.join(FORMATS)}, got {cfg.format!r}")
    if cfg.resume and cfg.output is None:
        raise UsageError("--resume needs --output FILE: it skips the files already written there")
    if cfg.resume and cfg.format not in RESUMABLE:
        raise UsageError(f"--resume needs --format {' or '.join(RESUMABLE)}, not {cfg.format}")
    if cfg.batch_size < 1 or cfg.workers < 1 or cfg.max_pixels < 1:
        raise UsageError("--batch-size, --workers and --max-pixels must be at least 1")


@contextlib.contextmanager
def _open_output(cfg: InferConfig, stdout: TextIO) -> Iterator[TextIO]:
    """stdout; a jsonl/csv file streamed row by row; or a json/table file written whole, then renamed into place."""
    if cfg.output is None:
        yield stdout
        return
    whole = cfg.format not in RESUMABLE and replaceable(cfg.output)  # never rename over /dev/stdout or a FIFO
    with contextlib.ExitStack() as stack:
        try:
            if whole:
                stream = stack.enter_context(atomic_write(cfg.output))
            else:
                mode = "a" if cfg.resume else "w"
                stream = stack.enter_context(cfg.output.open(mode, encoding="utf-8", newline=""))
        except OSError as e:
            raise UsageError(f"cannot write {cfg.output}: {e.strerror or e}") from e
        yield stream
