"""Temperature scaling and the numbers that judge confidences (numpy only: no torch, so any tool can score).

Temperature scaling (Guo et al. 2017, "On Calibration of Modern Neural Networks"): one scalar T > 0 divides the
logits, fitted by minimising the negative log-likelihood of held-out logits; argmax, and so accuracy, is unchanged.
Fitted on the validation split only; the test split is scored once, before and after.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

BINS = 15  # equal-width confidence bins of the expected calibration error (Guo et al.'s choice)
TARGET_ACCURACY = 0.99  # the recommended threshold keeps at least this accuracy on the images it accepts
_BETA_RANGE = (1e-3, 1e3)  # 1/T searched in this range: T from 0.001 to 1000


def softmax(logits: np.ndarray) -> np.ndarray:
    """(N, C) logits -> (N, C) float64 probabilities."""
    z = logits.astype(np.float64)
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The T > 0 minimising the mean NLL of softmax(logits / T); found by bisection on the derivative in 1/T.

    With b = 1/T, NLL(b) = mean(logsumexp(b z) - b z_y) is convex and its derivative, mean(E_p[z] - z_y), grows
    with b: the root of the derivative is the minimum, found to float precision. When every image is right there is
    no minimum; see below.
    """
    if len(logits) == 0:
        raise ValueError("no logits to fit a temperature on")
    z = logits.astype(np.float64)
    true = z[np.arange(len(z)), labels]

    def slope(b: float) -> float:
        return float(np.mean((softmax(b * z) * z).sum(axis=1) - true))

    lo, hi = _BETA_RANGE
    if slope(lo) >= 0:
        return 1 / lo
    if slope(hi) > 0:
        return 1 / _root(slope, lo, hi)
    # Every image is right (separable logits): the NLL falls as T falls, without a minimum, and a fit would claim
    # certainty. n right answers out of n promise (n + 1) / (n + 2) on the next image (Laplace's rule of
    # succession): T is the one whose mean confidence is that.
    target = (len(z) + 1) / (len(z) + 2)

    def excess(b: float) -> float:
        return float(softmax(b * z).max(axis=1).mean()) - target  # the top probability grows with b

    return 1 / _root(excess, lo, hi) if excess(hi) > 0 else 1 / hi


def _root(increasing: Callable[[float], float], lo: float, hi: float) -> float:
    """The b in [lo, hi] where an increasing function crosses 0 (lo if it never is below), in 100 halvings."""
    for _ in range(100):
        mid = np.sqrt(lo * hi)  # bisect in log space: b spans six orders of magnitude
        lo, hi = (mid, hi) if increasing(mid) < 0 else (lo, mid)
    return float(np.sqrt(lo * hi))


@dataclass(frozen=True)
class Scores:
    """How well probabilities describe the truth, on one set of images."""

    images: int
    accuracy: float  # fraction
    mean_confidence: float  # mean of the top probability
    ece: float  # expected calibration error, BINS equal-width bins, fraction
    nll: float  # mean negative log-likelihood of the true class, nats
    brier: float  # mean over images of sum over classes of (p - onehot)^2


def scores(probs: np.ndarray, labels: np.ndarray) -> Scores:
    """Accuracy, mean confidence, ECE, NLL and Brier score of (N, C) probabilities against (N,) labels."""
    n = len(labels)
    confidence, predicted = probs.max(axis=1), probs.argmax(axis=1)
    onehot = np.zeros_like(probs, dtype=np.float64)
    onehot[np.arange(n), labels] = 1
    return Scores(
        images=n,
        accuracy=float(np.mean(predicted == labels)),
        mean_confidence=float(confidence.mean()),
        ece=expected_calibration_error(confidence, predicted == labels),
        nll=float(-np.mean(np.log(np.clip(probs[np.arange(n), labels], 1e-300, None)))),
        brier=float(np.mean(((probs - onehot) ** 2).sum(axis=1))),
    )


def reliability(confidence: np.ndarray, correct: np.ndarray, bins: int = BINS) -> list[tuple[float, float, int]]:
    """Per equal-width confidence bin (lower edge exclusive, as in Guo et al.): (mean confidence, accuracy, count);
    empty bins are (nan, nan, 0)."""
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)  # (N,) bin of each image
    rows = []
    for b in range(bins):
        inside = which == b
        count = int(inside.sum())
        rows.append(
            (float(confidence[inside].mean()), float(correct[inside].mean()), count)
            if count
            else (float("nan"), float("nan"), 0)
        )
    return rows


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = BINS) -> float:
    """sum over bins of |accuracy - confidence| weighted by the bin's share of the images."""
    n = len(confidence)
    return (
        float(sum(count / n * abs(acc - conf) for conf, acc, count in reliability(confidence, correct, bins) if count))
        if n
        else 0.0
    )


def risk_coverage(confidence: np.ndarray, correct: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Accepting images from the most confident down: (coverage, accuracy of the accepted) after each image."""
    order = np.argsort(-confidence, kind="stable")
    hits = np.cumsum(correct[order])
    accepted = np.arange(1, len(order) + 1)
    return accepted / len(order), hits / accepted


@dataclass(frozen=True)
class Threshold:
    """The least confidence to accept an image, chosen on validation for a target accuracy of accepted images."""

    target_accuracy: float
    threshold: float  # accept when confidence >= threshold
    val_coverage: float  # fraction of validation images accepted
    val_accuracy: float | None  # accuracy on those; None when none is accepted


def recommend_threshold(confidence: np.ndarray, correct: np.ndarray, target: float = TARGET_ACCURACY) -> Threshold:
    """The lowest threshold at which the accepted images' accuracy is at least `target` (the widest coverage that
    meets it); 1.0 with zero coverage when no threshold does."""
    order = np.argsort(-confidence, kind="stable")
    conf, hits = confidence[order], np.cumsum(correct[order])
    accepted = np.arange(1, len(order) + 1)
    # A threshold must accept every image at its confidence: only the last of a run of ties is a valid cut.
    cut = np.append(conf[1:] != conf[:-1], True)
    ok = np.nonzero(cut & (hits / accepted >= target))[0]
    if not len(ok):
        return Threshold(target, 1.0, 0.0, None)
    i = ok[-1]
    return Threshold(target, float(conf[i]), float(accepted[i] / len(order)), float(hits[i] / accepted[i]))


def accepted(confidence: np.ndarray, correct: np.ndarray, threshold: float) -> tuple[float, float | None]:
    """(coverage, accuracy of the accepted images) at `threshold`; accuracy is None when none is accepted."""
    keep = confidence >= threshold
    return float(keep.mean()) if len(keep) else 0.0, float(correct[keep].mean()) if keep.any() else None


@dataclass(frozen=True)
class Calibration:
    """A fitted temperature and what it did, on the split it was fitted on and on test."""

    temperature: float
    fitted_on: str  # e.g. "val (5000 images)"
    val_before: Scores
    val_after: Scores
    test_before: Scores
    test_after: Scores
    threshold: Threshold  # chosen on validation, after scaling
    test_coverage: float  # the threshold applied to test
    test_accepted_accuracy: float | None

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def calibrate(
    val_logits: np.ndarray, val_labels: np.ndarray, test_logits: np.ndarray, test_labels: np.ndarray
) -> Calibration:
    """Fit T on validation logits only, then score both splits before and after, and pick a threshold."""
    t = fit_temperature(val_logits, val_labels)
    val_probs, test_probs = softmax(val_logits / t), softmax(test_logits / t)
    val_correct = val_probs.argmax(1) == val_labels
    threshold = recommend_threshold(val_probs.max(1), val_correct)
    coverage, accuracy = accepted(test_probs.max(1), test_probs.argmax(1) == test_labels, threshold.threshold)
    return Calibration(
        temperature=t,
        fitted_on=f"val ({len(val_labels)} images)",
        val_before=scores(softmax(val_logits), val_labels),
        val_after=scores(val_probs, val_labels),
        test_before=scores(softmax(test_logits), test_labels),
        test_after=scores(test_probs, test_labels),
        threshold=threshold,
        test_coverage=coverage,
        test_accepted_accuracy=accuracy,
    )
