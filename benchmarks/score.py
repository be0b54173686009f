"""The one scorer of `cifar-infer` rows: the true class of a file is its folder's name (ImageFolder layout).

Accuracy counts the classified files (error rows are counted apart, as `failed`), and the confidence figures use
the rows' own rounded probabilities, as an application reading them would; ECE as cifar_train.calibration
computes it (15 equal-width bins).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cifar_train.calibration import expected_calibration_error  # numpy only: no torch is imported


@dataclass(frozen=True)
class Score:
    files: int
    classified: int
    failed: int  # error rows
    accuracy: float | None  # percent of classified files whose label is their folder's name
    mean_confidence: float | None  # percent
    ece: float | None  # percent: expected calibration error of the rows' confidences
    abstained: int  # rows marked below --min-confidence
    accepted_accuracy: float | None  # percent correct among the classified rows not abstained


def read_rows(jsonl: Path) -> list[dict]:
    return [json.loads(line) for line in jsonl.read_text(encoding="utf-8").splitlines() if line.strip()]


def score(rows: list[dict]) -> Score:
    """Score `cifar-infer -f jsonl` rows against their files' folder names."""
    ok = [r for r in rows if "label" in r]
    if not ok:
        return Score(len(rows), 0, len(rows), None, None, None, 0, None)
    correct = np.array([r["label"] == Path(r["path"]).parent.name for r in ok])
    confidence = np.array([r["confidence"] for r in ok])
    kept = np.array([not r.get("abstained", False) for r in ok])
    return Score(
        files=len(rows),
        classified=len(ok),
        failed=len(rows) - len(ok),
        accuracy=100 * float(correct.mean()),
        mean_confidence=100 * float(confidence.mean()),
        ece=100 * expected_calibration_error(confidence, correct),
        abstained=int((~kept).sum()),
        accepted_accuracy=100 * float(correct[kept].mean()) if kept.any() else None,
    )
