"""Classify a labelled folder with the real `cifar-infer` CLI and score it: the user's path, end to end.

The true class of each image is its class folder's name (ImageFolder layout). Given an ImageFolder root
(train/, test/), the test split is scored; its class folders must be the model's. Wall time covers the whole
process (start-up, decoding, inference, writing jsonl); peak RSS is the cifar-infer process's own.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from cifar_export.errors import ExportError
from cifar_export.images import labelled_files
from cifar_runtime import Classifier
from cifar_train import accepted, atomic_write, expected_calibration_error

RSS_POLL_S = 0.02  # how often the child's memory high-water mark is read


@dataclass(frozen=True)
class FolderCheck:
    model: str
    folder: str
    files: int
    classified: int
    failed: int
    accuracy: float  # percent of classified files whose label is their folder's name
    mean_confidence: float  # percent: the mean of the rows' confidence
    ece: float  # percent: expected calibration error of the rows' confidences (15 equal-width bins)
    min_confidence: float | None  # the model's recommended threshold (None: it records none)
    coverage: float | None  # percent of classified files at or above it
    accepted_accuracy: float | None  # percent correct among those
    seconds: float  # cifar-infer process wall time
    images_per_s: float
    peak_rss_mb: float  # of the cifar-infer process alone (its VmHWM)
    batch_size: int
    command: str


def cifar_infer_command() -> list[str]:
    exe = shutil.which("cifar-infer", path=str(Path(sys.executable).parent))
    return [exe] if exe else [sys.executable, "-m", "cifar_runtime"]


def run_measured(cmd: list[str]) -> tuple[subprocess.CompletedProcess[str], float, float]:
    """(result, wall seconds, peak RSS in MiB) of one child process.

    The peak is polled from /proc/<pid>/status VmHWM, which belongs to the child's own address space. getrusage's
    ru_maxrss is no use here: Linux carries it across fork and exec, so the child would report the parent's peak.
    """
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    status, peak_kb = Path(f"/proc/{proc.pid}/status"), 0
    while proc.poll() is None:
        try:
            for line in status.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak_kb = max(peak_kb, int(line.split()[1]))
        except (OSError, ValueError):  # the process ended between poll() and the read
            pass
        time.sleep(RSS_POLL_S)
    stdout, stderr = proc.communicate()
    seconds = time.perf_counter() - start
    return subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr), seconds, peak_kb / 1024


def check_folder(model: Path | None, data: Path, predictions: Path, batch_size: int = 64) -> FolderCheck:
    """Run `cifar-infer FOLDER --format jsonl` into `predictions`, then compare labels with folder names."""
    classifier = Classifier(model, device="cpu", precision=None)
    folder, files, _ = labelled_files(data, "test", classifier.classes)
    # The file named is the file scored: cifar-infer's default `--precision auto` could pick its int8 sibling.
    precision = ["--precision", classifier.info.precision] if model else []
    cmd = [
        *cifar_infer_command(),
        str(folder),
        "--format",
        "jsonl",
        "--output",
        str(predictions),
        "--batch-size",
        str(batch_size),
    ] + (["--model", str(model), *precision] if model else [])
    r, seconds, peak_mb = run_measured(cmd)
    if r.returncode not in (0, 1):  # 1: some files failed, each with its row
        raise ExportError(f"cifar-infer exited {r.returncode}: {(r.stderr.strip().splitlines() or [''])[-1]}")
    rows = [json.loads(line) for line in predictions.read_text().splitlines() if line.strip()]
    ok = [row for row in rows if "label" in row]
    if not ok:
        raise ExportError(f"cifar-infer classified none of the {len(files)} files in {folder}: nothing to score")
    correct = np.array([row["label"] == Path(row["path"]).parent.name for row in ok])
    confidence = np.array([row["confidence"] for row in ok])
    threshold = classifier.info.recommended_min_confidence
    coverage, accepted_accuracy = accepted(confidence, correct, threshold) if threshold is not None else (None, None)
    return FolderCheck(
        model=str(model or "bundled default"),
        folder=str(folder),
        files=len(rows),
        classified=len(ok),
        failed=len(rows) - len(ok),
        accuracy=100 * float(correct.mean()),
        mean_confidence=100 * float(confidence.mean()),
        ece=100 * expected_calibration_error(confidence, correct),
        min_confidence=threshold,
        coverage=None if coverage is None else 100 * coverage,
        accepted_accuracy=None if accepted_accuracy is None else 100 * accepted_accuracy,
        seconds=seconds,
        images_per_s=len(ok) / seconds,
        peak_rss_mb=peak_mb,
        batch_size=batch_size,
        command=" ".join(cmd),
    )


def write_check(result: FolderCheck, path: Path) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(asdict(result), indent=2) + "\n"))
