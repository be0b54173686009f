"""A whole training run: data, model, epochs with checkpoints and resume, then one test pass on the best model."""

from __future__ import annotations

import csv
import json
import math
import os
import platform
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler

from cifar_train import temperature
from cifar_train.augment import BatchAugmentLoader, epoch_seed, normalize
from cifar_train.checkpoint import atomic_write, build_checkpoint, ensure_writable, load_checkpoint, save_checkpoint
from cifar_train.config import RUN_FIELDS, TrainConfig, validate_config
from cifar_train.data import Datasets, build_datasets
from cifar_train.distill import CACHE, teacher_probabilities
from cifar_train.distributed import Dist, broadcast_buffers, gather, init_distributed, select_device, shutdown
from cifar_train.errors import UserError
from cifar_train.loop import (
    EpochStats,
    Evaluation,
    StepOptions,
    evaluate,
    grad_scaler,
    native_bf16,
    step_options,
    train_one_epoch,
)
from cifar_train.metrics import classification_report, roc_curves
from cifar_train.models import get_spec
from cifar_train.optim import Lookahead, build_optimizer, build_scheduler, prepare_model, whitening_bias_trains
from cifar_train.plots import plot_confusion, plot_curves, plot_roc
from cifar_train.tblog import TensorBoardLog, check_tensorboard
from cifar_train.tta import TestTimeAugmentation

HISTORY_COLUMNS = (
    "epoch",
    "train_loss",
    "train_acc",
    "val_loss",
    "val_acc",
    "lr",
    "seconds",
    "data_seconds",
    "eval_seconds",
    "images_per_s",
    "step_images_per_s",
)


@dataclass(frozen=True)
class RunResult:
    out: Path
    metrics: dict[str, Any]
    model: nn.Module  # the final (last-epoch) weights of this process, unwrapped


def set_deterministic(on: bool) -> None:
    torch.use_deterministic_algorithms(on, warn_only=False)
    torch.backends.cudnn.deterministic = on
    torch.backends.cudnn.benchmark = not on  # autotuned kernels are faster but may differ run to run


def build_model(cfg: TrainConfig, num_classes: int) -> nn.Module:
    torch.manual_seed(cfg.seed)
    spec = get_spec(cfg.arch)
    model = spec.build(num_classes)
    if cfg.pretrained or cfg.weights:
        if spec.load_pretrained is None:
            raise UserError(f"{cfg.arch} has no pretrained weights: drop --pretrained/--weights")
        spec.load_pretrained(model, Path(cfg.weights) if cfg.weights else None)
    return model


def train_loader(
    data: Datasets, cfg: TrainConfig, d: Dist, epoch: int, pin: bool, soft: torch.Tensor | None = None
) -> Iterable:
    """This epoch's batches: order and augmentation come from epoch_seed, nothing carried over. `soft`: the
    distillation targets of the train images, (N, C)."""
    if cfg.augment == "batch":
        spec = get_spec(cfg.arch)
        return BatchAugmentLoader(
            data.train.images,
            data.train.labels,
            spec.mean,
            spec.std,
            cfg.batch_size,
            epoch,
            cfg.seed,
            cfg.flip,
            cfg.translate,
            cfg.cutout,
            d.rank,
            d.world_size,
            soft,
        )
    g = torch.Generator().manual_seed(epoch_seed(cfg.seed, epoch, d.rank))
    if d.enabled:
        sampler = DistributedSampler(data.train, d.world_size, d.rank, shuffle=True, seed=cfg.seed)
        sampler.set_epoch(epoch)
    else:
        sampler = RandomSampler(data.train, generator=g)
    return DataLoader(
        data.train, batch_size=cfg.batch_size, sampler=sampler, num_workers=cfg.workers, generator=g, pin_memory=pin
    )


def after_step(
    scheduler: torch.optim.lr_scheduler.LRScheduler, lookahead: Lookahead | None, model: nn.Module, every: int
) -> None:
    """After each optimizer step: advance the per-step schedule; every `every` steps, blend in the lookahead."""
    scheduler.step()
    step = scheduler.last_epoch  # optimizer steps taken so far
    if lookahead is not None and step % every == 0:
        lookahead.update(model, step)


def history_row(epoch: int, stats: EpochStats, val: Evaluation | None, lr: float, eval_seconds: float) -> dict:
    return {
        "epoch": epoch,
        "train_loss": stats.loss,
        "train_acc": stats.acc,
        "val_loss": val.loss if val else math.nan,
        "val_acc": val.acc if val else math.nan,
        "lr": lr,
        "seconds": stats.seconds,
        "data_seconds": stats.data_seconds,
        "eval_seconds": eval_seconds,
        "images_per_s": stats.images_per_s,
        "step_images_per_s": stats.step_images_per_s,
    }


def write_history(history: list[dict], path: Path) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, HISTORY_COLUMNS, extrasaction="ignore")
            w.writeheader()
            w.writerows(history)

    atomic_write(path, write)


def write_json(obj: Any, path: Path) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(obj, indent=2) + "\n"))


def check_resumable(ckpt: dict[str, Any], cfg: TrainConfig, path: Path) -> None:
    saved = ckpt["config"]
    # A resumed run may differ from its checkpoint only in where and how it runs (not the seed), and in epochs
    # under the step schedule: a run can be extended.
    free = tuple(f for f in RUN_FIELDS if f != "seed") + (("epochs",) if cfg.schedule == "step" else ())
    for name, value in asdict(cfg).items():
        if name not in free and saved.get(name, value) != value:
            raise UserError(
                f"{path} was trained with {name}={saved.get(name)!r}, this run has "
                f"{value!r}: pass the same flags to resume, or a new --out"
            )


def check_out(out: Path, resume: bool, overwrite: bool) -> None:
    """Refuse to start over a run that exists, and find an unwritable --out before any epoch is spent."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file: give a folder for the run")
    if not resume and not overwrite and any((out / f).exists() for f in ("last.pt", "best.pt")):
        raise UserError(
            f"{out} already holds a run: pass --resume to continue it, --overwrite to start over, or a new --out"
        )
    ensure_writable(out)


def train(cfg: TrainConfig, resume: bool = False, console: Console | None = None, overwrite: bool = False) -> RunResult:
    """Train per cfg into cfg.out; with resume, continue from cfg.out/last.pt. Returns the final metrics."""
    console = console or Console(stderr=True, soft_wrap=True)
    validate_config(cfg)
    if cfg.tensorboard:
        check_tensorboard()  # before any data is read, as every other flag
    d = init_distributed()
    try:
        if d.is_main:
            check_out(Path(cfg.out), resume, overwrite)
        return _train(cfg, resume, d, console)
    finally:
        shutdown(d)


def _train(cfg: TrainConfig, resume: bool, d: Dist, console: Console) -> RunResult:
    out = Path(cfg.out)
    device = select_device(cfg.device, d.local_rank)
    set_deterministic(cfg.deterministic)
    log = console.print if d.is_main else (lambda *_a, **_k: None)

    started = time.perf_counter()
    data = build_datasets(cfg)
    num_classes = len(data.classes)
    log(
        f"data: {len(data.train)} train / {len(data.val) if data.val else 0} val / {len(data.test)} test images, "
        f"{num_classes} classes, decoded in {time.perf_counter() - started:.1f}s; device {device}, "
        f"world size {d.world_size}"
    )

    model = build_model(cfg, num_classes)
    spec = get_spec(cfg.arch)
    whitening = data.train.images[:5000] if cfg.whiten_init else None
    prepare_model(
        model,
        cfg,
        normalize(whitening, torch.tensor(spec.mean), torch.tensor(spec.std)) if whitening is not None else None,
    )
    model = model.to(device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(model, cfg, spec.head)
    steps_per_epoch = len(train_loader(data, cfg, d, 1, pin=False))
    if steps_per_epoch == 0:
        raise UserError(f"--batch-size {cfg.batch_size} is larger than the {len(data.train)} training images")
    scheduler = build_scheduler(optimizer, cfg, steps_per_epoch)
    opts = step_options(cfg, device, cfg.channels_last)
    scaler = grad_scaler(device, opts)
    if opts.amp and device.type == "cpu" and not native_bf16():
        log("warning: --cpu-amp on a CPU without native bfloat16 (AVX512-BF16 or AMX) trains slower than fp32")
    lookahead: Lookahead | None = None

    history: list[dict] = []
    best_score, best_epoch, start_epoch = -1.0, None, 0
    if resume and (out / "last.pt").is_file():
        ckpt = load_checkpoint(out / "last.pt")
        check_resumable(ckpt, cfg, out / "last.pt")
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        scaler.load_state_dict(ckpt["scaler"])
        if ckpt.get("lookahead") is not None:
            lookahead = Lookahead(model, cfg.lookahead_every, cfg.epochs * steps_per_epoch)
            lookahead.average = ckpt["lookahead"]
        history, start_epoch = ckpt["history"], ckpt["epoch"]
        best_score, best_epoch = ckpt["best_score"], ckpt["best_epoch"]
        log(f"resumed from {out / 'last.pt'} after epoch {start_epoch}")
    elif resume:
        log(f"nothing to resume in {out}: starting a new run")

    soft = (
        teacher_probabilities(
            cfg.teachers, cfg.distill_temperature, data.train.images, data.classes, device, opts.amp, out / CACHE, log
        )
        if cfg.teachers
        else None
    )
    net = (
        DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
        if d.enabled
        else model
    )
    select_split = "val" if data.val is not None else "test"
    select_set = data.val if data.val is not None else data.test
    board = TensorBoardLog(out / "tensorboard") if cfg.tensorboard and d.is_main else None

    def checkpoint(epoch: int, metrics: dict[str, Any], training: bool) -> dict[str, Any]:
        state = (
            {
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict(),
                "lookahead": lookahead.average if lookahead else None,
                "rng": {"torch": torch.get_rng_state()},
            }
            if training
            else None
        )
        return build_checkpoint(
            model,
            asdict(cfg),
            list(data.classes),
            metrics=metrics,
            epoch=epoch,
            history=history,
            best_score=best_score,
            best_epoch=best_epoch,
            training_state=state,
        )

    for epoch in range(start_epoch + 1, cfg.epochs + 1):
        torch.manual_seed(epoch_seed(cfg.seed, epoch, d.rank))
        loader = train_loader(data, cfg, d, epoch, pin=device.type == "cuda", soft=soft)
        lr = optimizer.param_groups[0]["lr"]
        whitening_bias_trains(model, cfg, epoch)
        if cfg.lookahead and lookahead is None and epoch > cfg.lookahead_start:
            lookahead = Lookahead(model, cfg.lookahead_every, cfg.epochs * steps_per_epoch)
        stats = train_one_epoch(
            net,
            loader,
            optimizer,
            scaler,
            device,
            opts,
            d,
            description=f"epoch {epoch}/{cfg.epochs}",
            after_step=partial(after_step, scheduler, lookahead, model, cfg.lookahead_every),
        )
        if lookahead is not None:
            lookahead.blend(model, 1.0)  # end each epoch on the averaged weights
        broadcast_buffers(model, d)
        tick = time.perf_counter()
        selected = evaluate(model, select_set, num_classes, cfg.batch_size, device, opts, d, cfg.workers, select_split)
        eval_seconds = time.perf_counter() - tick
        history.append(history_row(epoch, stats, selected if data.val is not None else None, lr, eval_seconds))
        improved = selected.acc > best_score
        if improved:
            best_score, best_epoch = selected.acc, epoch
        log(
            f"epoch {epoch:>3}/{cfg.epochs}  train loss {stats.loss:.4f} acc {stats.acc:6.2%}  "
            f"{select_split} loss {selected.loss:.4f} acc {selected.acc:6.2%}{' *' if improved else '  '}  "
            f"lr {lr:.2e}  {stats.seconds:5.1f}s ({stats.images_per_s:.0f} img/s, "
            f"model only {stats.step_images_per_s:.0f} img/s)"
        )
        if d.is_main:
            metrics = {f"{select_split}_acc": selected.acc, f"{select_split}_loss": selected.loss, "epoch": epoch}
            if improved:
                save_checkpoint(out / "best.pt", checkpoint(epoch, metrics, training=False))
            save_checkpoint(out / "last.pt", checkpoint(epoch, metrics, training=True))  # after best.pt
            write_history(history, out / "history.csv")
            if board:
                board.epoch(history[-1])

    metrics = finish(cfg, data, out, device, opts, d, history, select_split, time.perf_counter() - started, log)
    if board:
        board.finish(metrics["config"], {k: metrics[k] for k in ("val_acc", "test_acc", "test_loss")})
    return RunResult(out=out, metrics=metrics, model=model)


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
    log: Any,
) -> dict[str, Any]:
    """Evaluate the selected checkpoint once on test (and val), write metrics.json and the plots."""
    if d.enabled:
        torch.distributed.barrier()  # rank 0 has finished writing best.pt
    best = load_checkpoint(out / "best.pt")
    model = get_spec(cfg.arch).build(len(data.classes))
    model.load_state_dict(best["model"])
    model = model.to(device, memory_format=torch.channels_last if cfg.channels_last else torch.contiguous_format)
    args = (len(data.classes), cfg.batch_size, device, opts, d, cfg.workers)
    tick = time.perf_counter()
    by_tta = {
        level: evaluate(TestTimeAugmentation(model, level), data.test, *args, description=f"test tta {level}")
        for level in range(cfg.tta + 1)
    }
    test = by_tta[cfg.tta]
    val_by_tta = (
        {
            level: evaluate(TestTimeAugmentation(model, level), data.val, *args, description=f"val tta {level}")
            for level in range(cfg.tta + 1)
        }
        if data.val is not None
        else {}
    )
    val = val_by_tta.get(cfg.tta)
    fitted = temperature.fit_levels(val_by_tta, by_tta, d)
    final_eval_seconds = time.perf_counter() - tick
    probs, labels = gather(test.probs, d), gather(test.labels, d)
    roc = roc_curves(probs, labels)
    epochs = [h for h in history if h["epoch"] > 0]
    metrics = {
        "arch": cfg.arch,
        "best_epoch": best["epoch"],
        "epochs": len(history),
        "selected_on": select_split,
        "selection_note": "best epoch chosen on the held-out validation split; test evaluated once"
        if select_split == "val"
        else "--val-size 0: best epoch chosen on the test split (the seed's behaviour), so test accuracy is optimistic",
        "val_acc": val.acc if val else None,
        "val_loss": val.loss if val else None,
        "test_acc": test.acc,
        "test_loss": test.loss,
        "tta": cfg.tta,
        "test_acc_by_tta": {str(level): e.acc for level, e in by_tta.items()},
        "val_acc_by_tta": {str(level): e.acc for level, e in val_by_tta.items()},
        "test": classification_report(test.confusion, data.classes),
        "test_roc_auc": {data.classes[c]: auc for c, (_, _, auc) in roc.items()},  # one-vs-rest, per class
        temperature.KEY: temperature.record(fitted),  # per TTA level, fitted on validation only
        "val": classification_report(val.confusion, data.classes) if val else None,
        "data": {
            "source": portable(cfg.data) if cfg.data else "torchvision CIFAR10",
            "train": len(data.train),
            "val": len(data.val) if data.val else 0,
            "test": len(data.test),
        },
        "seed": cfg.seed,
        "config": {**asdict(cfg), "data": portable(cfg.data), "out": portable(cfg.out)},
        "timing": {
            "epochs_seconds": sum(h["seconds"] for h in epochs),  # all epochs, across resumes
            "train_data_seconds": sum(h["data_seconds"] for h in epochs),  # of which waiting for batches
            "epoch_eval_seconds": sum(h.get("eval_seconds", 0.0) for h in epochs),  # selection passes
            "final_eval_seconds": final_eval_seconds,  # test (each TTA level) and val of the selected model
            "process_seconds": seconds,  # this process only: decoding, its epochs, the final evaluation
            "mean_epoch_seconds": _mean(h["seconds"] for h in epochs),
            "mean_data_wait_seconds": _mean(h["data_seconds"] for h in epochs),
            "mean_images_per_s": _mean(h["images_per_s"] for h in epochs),
            "mean_step_images_per_s": _mean(h["step_images_per_s"] for h in epochs),
        },
        "environment": {
            "torch": torch.__version__,
            "device": str(device),
            "world_size": d.world_size,
            "python": platform.python_version(),
            "cpu_threads": torch.get_num_threads(),
            "cpu": cpu_model(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "cpu_native_bf16": native_bf16(),
            "cuda_device": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        },
    }
    log(
        f"best epoch {best['epoch']} (selected on {select_split}): "
        + (f"val acc {val.acc:.2%}, " if val else "")
        + f"test acc {test.acc:.2%}  -> {out}"
    )
    log(temperature.summary_line(fitted, cfg.tta))
    if d.is_main:
        best["metrics"] = {
            **best["metrics"],
            "val_acc": metrics["val_acc"],
            "val_loss": metrics["val_loss"],
            "test_acc": test.acc,
            "test_loss": test.loss,
            "tta": cfg.tta,
            "val_acc_by_tta": metrics["val_acc_by_tta"],
            "test_acc_by_tta": metrics["test_acc_by_tta"],
        }
        best[temperature.KEY] = temperature.record(fitted)
        save_checkpoint(out / "best.pt", best)
        write_json(metrics, out / "metrics.json")
        title = f"{cfg.arch} on CIFAR-10"
        plot_curves(history, out / "curves.png", title, best["epoch"] if select_split == "val" else None)
        plot_confusion(
            metrics["test"]["confusion_matrix"],
            list(data.classes),
            out / "confusion.png",
            f"{title}: test confusion (acc {test.acc:.2%})",
        )
        plot_roc(roc, list(data.classes), out / "roc.png", f"{title}: one-vs-rest ROC on test")
        temperature.write_plot(fitted, cfg.tta, test, d, out / "calibration.png", cfg.arch)
    return metrics


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


def portable(path: str) -> str:
    """A path as it should be recorded: relative to the working directory, never this machine's absolute path."""
    return os.path.relpath(path) if path and os.path.isabs(path) else path


def _mean(values: Any) -> float | None:
    values = list(values)
    return sum(values) / len(values) if values else None
