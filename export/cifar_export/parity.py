"""The core check: the same real images through the original and an exported file, logits compared.

fp32 files must match the original (max |logit difference| <= atol and identical top-1 on every image);
fp16/int8 files are judged by how much top-1 accuracy they lose on the same labelled images.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np

from cifar_export.engines import Engine

if TYPE_CHECKING:
    from cifar_export.images import Images


@dataclass(frozen=True)
class ParityConfig:
    atol: float = 1e-4  # fp32: largest allowed |logit difference|
    min_agreement: float = 100.0  # fp32: top-1 agreement with the original, percent
    max_drop: float = 0.5  # fp16/int8: top-1 accuracy the file may lose, percentage points
    batch_sizes: tuple[int, ...] = (1, 8, 7)  # 7: an odd size through the dynamic batch axis
    limit: int = 0  # images used (a seeded sample of the folder); 0 = all


@dataclass(frozen=True)
class BatchStats:
    batch_size: int
    images: int
    max_abs: float  # largest |logit difference|
    max_rel: float  # per image, largest |logit difference| / largest |original logit|; the worst image
    top1_agreement: float  # percent of images whose top-1 class is the original's
    softmax_max_diff: float  # largest |probability difference|
    accuracy: float  # the file's top-1 accuracy on the labels, percent


@dataclass(frozen=True)
class ParityReport:
    precision: str  # "fp32" | "fp16" | "int8": which criterion applies
    reference: str  # what the file was compared with, e.g. "checkpoint best.pt" or "fp32 cnn.onnx"
    reference_accuracy: float  # the original's top-1 accuracy on the same images, percent
    rows: tuple[BatchStats, ...]
    failures: tuple[str, ...]  # one line per unmet criterion; empty when passed
    config: ParityConfig
    images: str  # the folder the images came from

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict[str, object]:
        return {
            "passed": self.passed,
            "precision": self.precision,
            "reference": self.reference,
            "images": self.images,
            "reference_accuracy": self.reference_accuracy,
            "rows": [asdict(r) for r in self.rows],
            "failures": list(self.failures),
            "config": asdict(self.config),
        }


def compare(reference: np.ndarray, candidate: np.ndarray, labels: np.ndarray, batch_size: int) -> BatchStats:
    """The four parity numbers (and the candidate's accuracy) for two (N, C) logit arrays."""
    diff = np.abs(candidate.astype(np.float64) - reference.astype(np.float64))
    scale = np.maximum(np.abs(reference).max(axis=1), 1e-12)  # (N,) each image's logit magnitude
    return BatchStats(
        batch_size=batch_size,
        images=len(reference),
        max_abs=float(diff.max()),
        max_rel=float((diff.max(axis=1) / scale).max()),
        top1_agreement=_percent(candidate.argmax(1) == reference.argmax(1)),
        softmax_max_diff=float(np.abs(_softmax(candidate) - _softmax(reference)).max()),
        accuracy=_percent(candidate.argmax(1) == labels),
    )


def check_parity(
    reference: Engine, reference_name: str, candidate: Engine, images: Images, precision: str, cfg: ParityConfig
) -> ParityReport:
    """Run both on the images at every configured batch size and judge the candidate by its precision."""
    # The original runs once, at the largest batch; its own batch-size jitter (~1e-7) counts against the file.
    ref = reference.logits(images.inputs, max(cfg.batch_sizes))
    ref_acc = _percent(ref.argmax(1) == images.labels)
    rows = tuple(compare(ref, candidate.logits(images.inputs, b), images.labels, b) for b in cfg.batch_sizes)
    failures = []
    for r in rows:
        if precision == "fp32":
            if r.max_abs > cfg.atol:
                failures.append(f"batch {r.batch_size}: max |logit diff| {r.max_abs:.3g} > atol {cfg.atol:g}")
            if r.top1_agreement < cfg.min_agreement:
                failures.append(
                    f"batch {r.batch_size}: top-1 agreement {r.top1_agreement:.2f}% < {cfg.min_agreement:g}%"
                )
        elif ref_acc - r.accuracy > cfg.max_drop:
            failures.append(
                f"batch {r.batch_size}: accuracy {r.accuracy:.2f}% is {ref_acc - r.accuracy:.2f} points below "
                f"the original's {ref_acc:.2f}% (allowed {cfg.max_drop:g})"
            )
    return ParityReport(precision, reference_name, ref_acc, rows, tuple(failures), cfg, str(images.folder))


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _percent(hits: np.ndarray) -> float:
    return 100.0 * float(np.mean(hits))
