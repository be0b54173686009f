"""Temperature scaling of a trained model, at the end of every run and for checkpoints trained before it existed.

One temperature per test-time augmentation level (the six-view average has other logits than one view), fitted on
the run's validation split only and recorded in the checkpoint and metrics.json under `temperature_scaling`:
{"<tta level>": Calibration.to_dict()}. Exports fold it into every graph (cifar_export.source.build_model).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cifar_train.calibration import Calibration, calibrate
from cifar_train.checkpoint import (
    atomic_write,
    config_from_checkpoint,
    load_checkpoint,
    model_from_checkpoint,
    save_checkpoint,
)
from cifar_train.data import build_datasets
from cifar_train.distributed import Dist, gather
from cifar_train.errors import UserError
from cifar_train.loop import Evaluation, StepOptions, evaluate
from cifar_train.plots import plot_calibration
from cifar_train.tta import TestTimeAugmentation

KEY = "temperature_scaling"  # in checkpoints and metrics.json (not "calibration": that names int8 ranges in ONNX)


def fit_levels(
    val_by_tta: dict[int, Evaluation], test_by_tta: dict[int, Evaluation], d: Dist
) -> dict[str, Calibration]:
    """One Calibration per TTA level, each fitted on that level's validation logits; {} without a validation split."""
    fitted = {}
    for level, val in val_by_tta.items():
        test = test_by_tta[level]
        fitted[str(level)] = calibrate(
            gather(val.logits, d).numpy(),
            gather(val.labels, d).numpy(),
            gather(test.logits, d).numpy(),
            gather(test.labels, d).numpy(),
        )
    return fitted


def record(fitted: dict[str, Calibration]) -> dict[str, Any]:
    """What the checkpoint and metrics.json keep of the fits."""
    return {level: cal.to_dict() for level, cal in fitted.items()}


def write_plot(
    fitted: dict[str, Calibration], level: int, logits: np.ndarray, labels: np.ndarray, path: Path, arch: str
) -> None:
    """calibration.png: the reliability diagram and risk-coverage curve of the run's own TTA level on test
    (`logits`, `labels`: every rank's, gathered)."""
    cal = fitted.get(str(level))
    if cal is not None:
        plot_calibration(
            logits,
            labels,
            cal.temperature,
            cal.threshold.threshold,
            path,
            f"{arch}, TTA level {level}: confidence on test",
        )


def summary_line(fitted: dict[str, Calibration], level: int) -> str:
    cal = fitted.get(str(level))
    if cal is None:
        return "no validation split: no temperature fitted (confidences stay as trained)"
    kept = cal.test_accepted_accuracy
    return (
        f"temperature {cal.temperature:.4f} (fitted on {cal.fitted_on}): test ECE {cal.test_before.ece:.2%} -> "
        f"{cal.test_after.ece:.2%}, NLL {cal.test_before.nll:.4f} -> {cal.test_after.nll:.4f}; accept at "
        f">= {cal.threshold.threshold:.4f}: {cal.test_coverage:.1%} of test"
        + (f" at {kept:.2%} accuracy" if kept is not None else "")
    )


def fit_checkpoint(
    checkpoint: Path, data: str, out: Path, device: str = "cpu", overwrite: bool = False, log: Any = print
) -> dict[str, Calibration]:
    """Fit temperatures for a finished run's checkpoint and write the run again to `out`: best.pt with the fits,
    metrics.json (the run's own, when beside the checkpoint), history.csv and calibration.png."""
    if out.resolve() == checkpoint.resolve().parent:
        raise UserError(
            f"--out {out} is the checkpoint's own folder: fit-temperature never writes over its input; "
            "give another folder"
        )
    if (out / "best.pt").exists() and not overwrite:
        raise UserError(f"{out / 'best.pt'} already exists: pass --overwrite to replace it, or another --out")
    ckpt = load_checkpoint(checkpoint)
    cfg = config_from_checkpoint(ckpt, data)
    if cfg.val_size == 0:
        raise UserError(
            f"{checkpoint} was trained with --val-size 0: there is no validation split to fit a "
            "temperature on (fitting on test would make its test figures optimistic)"
        )
    datasets, cfg = build_datasets(cfg, log)
    if tuple(ckpt["classes"]) != datasets.classes:
        raise UserError(f"--data {data} has classes {list(datasets.classes)}, the checkpoint {list(ckpt['classes'])}")
    model = model_from_checkpoint(ckpt).to(torch.device(device))
    args = (len(datasets.classes), 500, torch.device(device), StepOptions(), Dist(), 0)
    levels = range(cfg.tta + 1)
    test = {
        t: evaluate(TestTimeAugmentation(model, t), datasets.test, *args, description=f"test tta {t}") for t in levels
    }
    val = {t: evaluate(TestTimeAugmentation(model, t), datasets.val, *args, description=f"val tta {t}") for t in levels}
    _check_accuracy(ckpt, test, checkpoint)
    fitted = fit_levels(val, test, Dist())
    out.mkdir(parents=True, exist_ok=True)
    save_checkpoint(out / "best.pt", {**ckpt, KEY: record(fitted)})
    metrics_file = checkpoint.parent / "metrics.json"
    if metrics_file.is_file():
        metrics = {**json.loads(metrics_file.read_text()), KEY: record(fitted)}
        atomic_write(out / "metrics.json", lambda tmp: tmp.write_text(json.dumps(metrics, indent=2) + "\n"))
    if (checkpoint.parent / "history.csv").is_file():
        atomic_write(out / "history.csv", lambda tmp: shutil.copyfile(checkpoint.parent / "history.csv", tmp))
    write_plot(
        fitted, cfg.tta, test[cfg.tta].logits.numpy(), test[cfg.tta].labels.numpy(), out / "calibration.png", cfg.arch
    )
    log(summary_line(fitted, cfg.tta))
    return fitted


def _check_accuracy(ckpt: dict[str, Any], test: dict[int, Evaluation], path: Path) -> None:
    """The data must be the run's: its test accuracy at each TTA level is what the run recorded."""
    recorded = (ckpt.get("metrics") or {}).get("test_acc_by_tta") or {}
    for level, evaluation in test.items():
        want = recorded.get(str(level))
        if want is not None and abs(evaluation.acc - want) > 0.002:
            raise UserError(
                f"{path} scored {want:.2%} on test at TTA level {level} when trained, {evaluation.acc:.2%} "
                "on this --data: is it the run's data set?"
            )
