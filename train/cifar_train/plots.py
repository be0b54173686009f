"""Pictures of a run: learning curves and the test confusion matrix."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on training machines
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from cifar_train.checkpoint import atomic_write  # noqa: E402


def _save(fig: plt.Figure, path: Path) -> None:
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=150, bbox_inches="tight"))
    plt.close(fig)


def plot_curves(history: list[dict], path: Path, title: str, best_epoch: int | None) -> None:
    """Loss, accuracy and learning rate per epoch, train vs val, with the selected epoch marked."""
    epochs = [h["epoch"] for h in history]
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2), gridspec_kw={"width_ratios": [1, 1, 0.6]})
    for ax, key, label in ((axes[0], "loss", "Cross-entropy loss"), (axes[1], "acc", "Accuracy (%)")):
        scale = 100 if key == "acc" else 1
        ax.plot(epochs, [h[f"train_{key}"] * scale for h in history], "o-", ms=3, label="train", color="#1f77b4")
        val = [h[f"val_{key}"] for h in history]
        if any(v == v for v in val):  # not all NaN: there is a validation split
            ax.plot(epochs, [v * scale for v in val], "o-", ms=3, label="validation", color="#d62728")
        ax.set_title(label)
    if best_epoch is not None:
        best = next(h for h in history if h["epoch"] == best_epoch)
        for ax in axes[:2]:
            ax.axvline(best_epoch, color="0.5", ls="--", lw=1, label=f"selected: epoch {best_epoch}")
        axes[1].annotate(
            f"{best['val_acc']:.2%}",
            (best_epoch, best["val_acc"] * 100),
            textcoords="offset points",
            xytext=(-8, 8),
            ha="right",
            color="#d62728",
        )
    axes[2].step(epochs, [h["lr"] for h in history], where="post", color="0.3")
    axes[2].set_yscale("log")
    axes[2].set_title("Learning rate")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    for ax in axes[:2]:
        ax.legend(frameon=False)
    fig.suptitle(title)
    fig.tight_layout()
    _save(fig, path)


def plot_confusion(confusion: list[list[int]], classes: list[str], path: Path, title: str) -> None:
    """Row-normalised confusion matrix (recall per class on the diagonal) with counts in each cell."""
    cm = np.asarray(confusion, dtype=float)
    norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(7.5, 6.5))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for t in range(len(classes)):
        for p in range(len(classes)):
            color = "white" if norm[t, p] > 0.5 else "black"
            ax.text(p, t, f"{int(cm[t, p])}", ha="center", va="center", fontsize=8, color=color)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="share of true class")
    ax.set_title(title)
    _save(fig, path)


def plot_time_to_accuracy(curves: dict[str, list[tuple[float, float]]], path: Path, title: str) -> None:
    """Validation accuracy against cumulative training minutes, one line per run (label -> [(minutes, acc)])."""
    fig, ax = plt.subplots(figsize=(8, 5))
    for label, points in curves.items():
        ax.plot([m for m, _ in points], [a * 100 for _, a in points], "o-", ms=3, label=label)
    ax.set_xlabel("training time (minutes, epochs and per-epoch validation; this machine)")
    ax.set_ylabel("validation accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(frameon=False)
    ax.set_title(title)
    fig.tight_layout()
    _save(fig, path)


def plot_roc(curves: dict[int, tuple], classes: list[str], path: Path, title: str) -> None:
    """One-vs-rest ROC curve of every class, AUC in the legend."""
    fig, ax = plt.subplots(figsize=(7, 6))
    for c, (fpr, tpr, auc) in curves.items():
        ax.plot(fpr.numpy(), tpr.numpy(), lw=1.2, label=f"{classes[c]} (AUC {auc:.3f})")
    ax.plot([0, 1], [0, 1], color="0.6", ls="--", lw=1)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.grid(alpha=0.3)
    ax.legend(frameon=False, fontsize=8, loc="lower right")
    ax.set_title(title)
    _save(fig, path)


def plot_calibration(
    test_logits: np.ndarray, test_labels: np.ndarray, temperature: float, threshold: float, path: Path, title: str
) -> None:
    """Reliability diagram and risk-coverage curve on test, before and after temperature scaling."""
    from cifar_train.calibration import expected_calibration_error, reliability, risk_coverage, softmax

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 5))
    left.plot([0, 1], [0, 1], color="0.6", ls="--", lw=1, label="perfect calibration")
    for t, name, color in ((1.0, "before", "#d62728"), (temperature, f"after (T = {temperature:.3f})", "#1f77b4")):
        probs = softmax(test_logits / t)
        confidence, correct = probs.max(1), probs.argmax(1) == test_labels
        bins = [(c, a) for c, a, n in reliability(confidence, correct) if n]
        ece = expected_calibration_error(confidence, correct)
        left.plot([c for c, _ in bins], [a for _, a in bins], "o-", ms=4, color=color, label=f"{name}: ECE {ece:.2%}")
        coverage, accuracy = risk_coverage(confidence, correct)
        right.plot(coverage * 100, accuracy * 100, color=color, label=name)
    keep = softmax(test_logits / temperature).max(1) >= threshold
    if keep.any():
        right.axvline(
            keep.mean() * 100,
            color="0.4",
            ls=":",
            lw=1,
            label=f"recommended threshold {threshold:.3f}: {keep.mean():.1%} accepted",
        )
    left.set(
        xlabel="confidence (mean of each of 15 bins)",
        ylabel="accuracy in the bin",
        xlim=(0, 1),
        ylim=(0, 1),
        title="Reliability diagram (test)",
    )
    right.set(
        xlabel="images accepted, most confident first (%)",
        ylabel="accuracy of the accepted (%)",
        title="Risk-coverage (test)",
    )
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend(frameon=False, fontsize=8, loc="lower right")
    fig.suptitle(title)
    fig.tight_layout()
    _save(fig, path)
