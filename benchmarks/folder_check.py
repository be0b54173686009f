"""A model end to end through the real `cifar-infer` on a labelled folder: accuracy, calibration, speed, memory.

    python -m benchmarks.folder_check MODEL.onnx --data ../shared/cifar10-jpeg --out folder_check.json

The true class of each image is its class folder's name; given an ImageFolder root, its test/ split is scored.
The file named is the file run (`--precision` set to its own). When the model records a recommended minimum
confidence, cifar-infer runs with it, and the report gives the share of files accepted and their accuracy. Wall
time covers the whole process (start-up, decoding, inference, writing jsonl); peak RSS is cifar-infer's own. The
model cards read these reports (cifar-export card).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from benchmarks.measure import run_measured
from benchmarks.score import read_rows, score
from cifar_runtime import Classifier
from cifar_runtime.atomic import atomic_write


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


def check_folder(model: Path, data: Path, predictions: Path, batch_size: int = 64) -> FolderCheck:
    """Run `cifar-infer FOLDER -f jsonl` into `predictions` and score its rows."""
    info = Classifier(model, device="cpu", precision=None).info
    folder = data / "test" if (data / "test").is_dir() else data
    found = sorted(d.name for d in folder.iterdir() if d.is_dir()) if folder.is_dir() else []
    if not found:
        raise SystemExit(f"{folder} has no class folders: expected {folder}/<class>/<images>")
    unknown = [c for c in found if c not in info.classes]
    if unknown:
        raise SystemExit(f"{folder} has class folders the model does not know ({', '.join(unknown[:5])})")
    threshold = info.recommended_min_confidence
    args = [
        str(folder),
        "--format",
        "jsonl",
        "--output",
        str(predictions),
        "--batch-size",
        str(batch_size),
        "--model",
        str(model),
        "--precision",
        info.precision,
    ]
    args += ["--min-confidence", "recommended"] if threshold is not None else []
    run = run_measured([sys.executable, "-m", "cifar_runtime", *args])
    if run.returncode not in (0, 1):  # 1: some files failed, each with its row
        raise SystemExit(f"cifar-infer exited {run.returncode}: {run.stderr.strip()[-300:]}")
    s = score(read_rows(predictions))
    if not s.classified:
        raise SystemExit(f"cifar-infer classified none of the {s.files} files in {folder}: nothing to score")
    return FolderCheck(
        model=str(model),
        folder=str(folder),
        files=s.files,
        classified=s.classified,
        failed=s.failed,
        accuracy=s.accuracy,
        mean_confidence=s.mean_confidence,
        ece=s.ece,
        min_confidence=threshold,  # type: ignore[arg-type]
        coverage=None if threshold is None else 100 * (s.classified - s.abstained) / s.classified,
        accepted_accuracy=s.accepted_accuracy if threshold is not None else None,
        seconds=run.seconds,
        images_per_s=s.classified / run.seconds,
        peak_rss_mb=run.peak_rss_mb,
        batch_size=batch_size,
        command=" ".join(["cifar-infer", *args]),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="an ONNX file exported by cifar-export")
    parser.add_argument("--data", type=Path, required=True, help="a labelled folder, or an ImageFolder root")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--out", type=Path, help="report (default: folder_check.<model>.json beside the model)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing report")
    args = parser.parse_args()
    out = args.out or args.model.with_name(f"folder_check.{args.model.name.removesuffix('.onnx')}.json")
    if out.exists() and not args.overwrite:
        raise SystemExit(f"{out} exists: pass --overwrite to replace it")
    result = check_folder(args.model, args.data, out.with_name(out.stem + ".predictions.jsonl"), args.batch_size)
    with atomic_write(out) as f:
        f.write(json.dumps(asdict(result), indent=2) + "\n")
    print(
        f"{result.classified}/{result.files} classified, accuracy {result.accuracy:.2f}%, ECE {result.ece:.2f}%, "
        f"{result.images_per_s:.0f} images/s, peak RSS {result.peak_rss_mb:.0f} MB -> {out}"
    )


if __name__ == "__main__":
    main()
