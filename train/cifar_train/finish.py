"""The end of a run: the selected checkpoint evaluated once on test (and val) at every TTA level, temperatures fitted
on validation, the run record (metrics.json) and the plots written."""

from __future__ import annotations

import platform
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict
from pathlib import Path

import torch

from cifar_train import temperature
from cifar_train.checkpoint import load_checkpoint, save_checkpoint
from cifar_train.config import TrainConfig
from cifar_train.data import Datasets
from cifar_train.dataset import portable
from cifar_train.distributed import Dist, gather
from cifar_train.loop import StepOptions, evaluate, native_bf16
from cifar_train.metrics import classification_report, roc_curves
from cifar_train.models import get_spec
from cifar_train.plots import plot_confusion, plot_curves, plot_roc
from cifar_train.record import DataRecord, Environment, RunRecord, Timing
from cifar_train.tta import TestTimeAugmentation


def finish(
    cfg: TrainConfig,
    data: Datasets,
    out: Path,
    device: torch.device,
    opts: StepOptions,
    d: Dist,
    history: list[dict],
    select_split: str,
    seconds: float,
    log: Callable[[str], None],
) -> RunRecord:
    """Evaluate the selected checkpoint once on test (and val), write metrics.json and the plots."""
    if d.enabled:
        torch.distributed.barrier()  # rank 0 has finished writing best.pt
    best = load_checkpoint(out / "best.pt")
    model = get_spec(cfg.arch).build(len(data.classes))
    model.load_state_dict(best["model"])
    model = model.to(device, memory_format=torch.channels_last if cfg.channels_last else torch.contiguous_format)
    args = (len(data.classes), cfg.batch_size, device, opts, d, cfg.workers)
    tick = time.perf_counter()
    levels = range(cfg.tta + 1)
    by_tta = {
        t: evaluate(TestTimeAugmentation(model, t), data.test, *args, description=f"test tta {t}") for t in levels
    }
    val_by_tta = (
        {t: evaluate(TestTimeAugmentation(model, t), data.val, *args, description=f"val tta {t}") for t in levels}
        if data.val is not None
        else {}
    )
    test, val = by_tta[cfg.tta], val_by_tta.get(cfg.tta)
    fitted = temperature.fit_levels(val_by_tta, by_tta, d)
    final_eval_seconds = time.perf_counter() - tick
    # Collectives run on every rank, before the main rank writes alone: a gather inside `if d.is_main` would hang.
    test_logits, test_labels = gather(test.logits, d), gather(test.labels, d)
    roc = roc_curves(test_logits.softmax(1), test_labels)
    epochs = [h for h in history if h["epoch"] > 0]
    record = RunRecord(
        arch=cfg.arch,
        best_epoch=best["epoch"],
        epochs=len(history),
        selected_on=select_split,
        selection_note="best epoch chosen on the held-out validation split; test evaluated once"
        if select_split == "val"
        else "--val-size 0: best epoch chosen on the test split (the seed's behaviour), so test accuracy is optimistic",
        val_acc=val.acc if val else None,
        val_loss=val.loss if val else None,
        test_acc=test.acc,
        test_loss=test.loss,
        data=DataRecord(
            source=portable(cfg.data) if cfg.data else "torchvision CIFAR10",
            train=len(data.train),
            val=len(data.val) if data.val else 0,
            test=len(data.test),
        ),
        seed=cfg.seed,
        config={**asdict(cfg), "data": portable(cfg.data), "out": portable(cfg.out)},
        timing=Timing(
            epochs_seconds=sum(h["seconds"] for h in epochs),  # all epochs, across resumes
            train_data_seconds=sum(h["data_seconds"] for h in epochs),  # of which waiting for batches
            epoch_eval_seconds=sum(h.get("eval_seconds", 0.0) for h in epochs),  # selection passes
            final_eval_seconds=final_eval_seconds,
            process_seconds=seconds,  # this process only: decoding, its epochs, the final evaluation
            mean_epoch_seconds=_mean(h["seconds"] for h in epochs),
            mean_data_wait_seconds=_mean(h["data_seconds"] for h in epochs),
            mean_images_per_s=_mean(h["images_per_s"] for h in epochs),
            mean_step_images_per_s=_mean(h["step_images_per_s"] for h in epochs),
        ),
        environment=Environment(
            torch=torch.__version__,
            device=str(device),
            world_size=d.world_size,
            python=platform.python_version(),
            cpu_threads=torch.get_num_threads(),
            cpu=cpu_model(),
            cpu_capability=torch.backends.cpu.get_cpu_capability(),
            cpu_native_bf16=native_bf16(),
            cuda_device=torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        ),
        tta=cfg.tta,
        test_acc_by_tta={str(t): e.acc for t, e in by_tta.items()},
        val_acc_by_tta={str(t): e.acc for t, e in val_by_tta.items()},
        test=classification_report(test.confusion, data.classes),
        val=classification_report(val.confusion, data.classes) if val else None,
        test_roc_auc={data.classes[c]: auc for c, (_, _, auc) in roc.items()},  # one-vs-rest, per class
        temperature_scaling=temperature.record(fitted),  # per TTA level, fitted on validation only
        dataset=data.info.to_json(),
    )
    log(
        f"best epoch {best['epoch']} (selected on {select_split}): "
        + (f"val acc {val.acc:.2%}, " if val else "")
        + f"test acc {test.acc:.2%}  -> {out}"
    )
    log(temperature.summary_line(fitted, cfg.tta))
    if d.is_main:
        best["metrics"] = {
            **best["metrics"],
            "val_acc": record.val_acc,
            "val_loss": record.val_loss,
            "test_acc": test.acc,
            "test_loss": test.loss,
            "tta": cfg.tta,
            "val_acc_by_tta": record.val_acc_by_tta,
            "test_acc_by_tta": record.test_acc_by_tta,
        }
        best[temperature.KEY] = record.temperature_scaling
        save_checkpoint(out / "best.pt", best)
        record.write(out / "metrics.json")
        title = f"{cfg.arch} on {data.info.name}"
        plot_curves(history, out / "curves.png", title, best["epoch"] if select_split == "val" else None)
        plot_confusion(
            record.test["confusion_matrix"],
            list(data.classes),
            out / "confusion.png",
            f"{title}: test confusion (acc {test.acc:.2%})",
        )
        plot_roc(roc, list(data.classes), out / "roc.png", f"{title}: one-vs-rest ROC on test")
        temperature.write_plot(
            fitted, cfg.tta, test_logits.numpy(), test_labels.numpy(), out / "calibration.png", cfg.arch
        )
    return record


def cpu_model() -> str:
    """The CPU's model name, since training times depend on it: /proc/cpuinfo on Linux, platform's guess elsewhere."""
    try:
        names = [
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ]
    except OSError:
        names = []
    return names[0] if names else platform.processor() or platform.machine()


def _mean(values: Iterable[float]) -> float | None:
    values = list(values)
    return sum(values) / len(values) if values else None
