"""Classify a labelled folder with the real `cifar-infer` CLI and score it: the user's path, end to end.

The true class of each image is its parent folder's name (ImageFolder layout), so any split of an ImageFolder
root works. Wall time covers the whole process (start-up, decoding, inference, writing jsonl).
"""

from __future__ import annotations

import json
import resource
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from cifar_export.errors import ExportError
from cifar_train.checkpoint import atomic_write


@dataclass(frozen=True)
class FolderCheck:
    model: str
    folder: str
    files: int
    classified: int
    failed: int
    accuracy: float  # percent of classified files whose label is their folder's name
    seconds: float  # cifar-infer process wall time
    images_per_s: float
    peak_rss_mb: float  # of the cifar-infer process
    batch_size: int
    command: str


def cifar_infer_command() -> list[str]:
    exe = shutil.which("cifar-infer", path=str(Path(sys.executable).parent))
    return [exe] if exe else [sys.executable, "-m", "cifar_runtime"]


def check_folder(model: Path | None, folder: Path, predictions: Path, batch_size: int = 64) -> FolderCheck:
    """Run `cifar-infer FOLDER --format jsonl` into `predictions`, then compare labels with folder names."""
    if not folder.is_dir():
        raise ExportError(f"{folder} is not a folder of class subfolders (e.g. ../shared/cifar10-jpeg/test)")
    cmd = [
        *cifar_infer_command(),
        str(folder),
        "--format",
        "jsonl",
        "--output",
        str(predictions),
        "--batch-size",
        str(batch_size),
    ] + (["--model", str(model)] if model else [])
    start = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if r.returncode not in (0, 1):  # 1: some files failed, each with its row
        raise ExportError(f"cifar-infer exited {r.returncode}: {r.stderr.strip().splitlines()[-1:]}")
    rows = [json.loads(line) for line in predictions.read_text().splitlines() if line.strip()]
    ok = [row for row in rows if "label" in row]
    correct = sum(row["label"] == Path(row["path"]).parent.name for row in ok)
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # Linux: KiB, the largest child so far
    return FolderCheck(
        model=str(model or "bundled default"),
        folder=str(folder),
        files=len(rows),
        classified=len(ok),
        failed=len(rows) - len(ok),
        accuracy=100 * correct / max(len(ok), 1),
        seconds=seconds,
        images_per_s=len(ok) / seconds,
        peak_rss_mb=peak_kb / 1024,
        batch_size=batch_size,
        command=" ".join(cmd),
    )


def write_check(result: FolderCheck, path: Path) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(asdict(result), indent=2) + "\n"))
