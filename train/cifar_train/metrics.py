"""Classification metrics from a confusion matrix (rows = true class, columns = predicted class)."""

from __future__ import annotations

import torch


def confusion_matrix(preds: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(C, C) int64 counts; entry [t, p] counts images of class t predicted as p."""
    return torch.bincount(labels * num_classes + preds, minlength=num_classes**2).reshape(num_classes, num_classes)


def accuracy(confusion: torch.Tensor) -> float:
    return float(confusion.diag().sum() / confusion.sum().clamp(min=1))


def classification_report(confusion: torch.Tensor, classes: tuple[str, ...]) -> dict:
    """Accuracy, per-class precision/recall/F1/support, macro averages and the matrix itself, JSON-ready."""
    cm = confusion.double()
    tp = cm.diag()
    support = cm.sum(1)
    predicted = cm.sum(0)
    precision = tp / predicted.clamp(min=1)
    recall = tp / support.clamp(min=1)  # = per-class accuracy
    f1 = 2 * precision * recall / (precision + recall).clamp(min=1e-12)
    per_class = {
        name: {
            "accuracy": float(recall[i]),
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, name in enumerate(classes)
    }
    return {
        "accuracy": accuracy(confusion),
        "macro_precision": float(precision.mean()),
        "macro_recall": float(recall.mean()),
        "macro_f1": float(f1.mean()),
        "per_class": per_class,
        "classes": list(classes),
        "confusion_matrix": confusion.tolist(),
    }


def roc_curves(probs: torch.Tensor, labels: torch.Tensor) -> dict[int, tuple[torch.Tensor, torch.Tensor, float]]:
    """One-vs-rest ROC per class from (N, C) scores: {class: (false positive rates, true positive rates, AUC)}.

    Thresholds are every distinct score; ties move together (no optimistic ordering). AUC by the trapezoid rule.
    """
    curves = {}
    for c in range(probs.shape[1]):
        positive = labels == c
        if positive.all() or not positive.any():
            continue  # one class only among these images: the curve is undefined
        scores, order = probs[:, c].double().sort(descending=True)
        hits = positive[order].double()
        last_of_tie = torch.cat([scores[1:] != scores[:-1], torch.tensor([True])])
        tpr = torch.cat([torch.zeros(1), hits.cumsum(0)[last_of_tie] / hits.sum()])
        fpr = torch.cat([torch.zeros(1), (1 - hits).cumsum(0)[last_of_tie] / (1 - hits).sum()])
        curves[c] = (fpr, tpr, float(torch.trapezoid(tpr, fpr)))
    return curves
