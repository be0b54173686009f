"""A whole training run: data, model, epochs with checkpoints and resume, then one test pass on the best model."""

from __future__ import annotations

import csv
import json
import math
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler

from cifar_train.checkpoint import atomic_write, load_checkpoint, save_checkpoint, without_training_state
from cifar_train.config import TrainConfig, mean_std
from cifar_train.data import Datasets, build_datasets
from cifar_train.distributed import Dist, broadcast_buffers, init_distributed, select_device, shutdown
from cifar_train.errors import UserError
from cifar_train.loop import EpochStats, Evaluation, evaluate, train_one_epoch
from cifar_train.metrics import classification_report
from cifar_train.models import create_model
from cifar_train.models.resnet import load_pretrained
from cifar_train.plots import plot_confusion, plot_curves

# Fields that define what is trained; a resumed run must agree with its checkpoint on all of them.
RECIPE_FIELDS = ("arch", "batch_size", "lr", "step_size", "gamma", "image_size", "val_size", "split_seed", "seed",
                 "pretrained", "weights", "channels_last")
HISTORY_COLUMNS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds", "data_seconds",
                   "images_per_s", "step_images_per_s")


@dataclass(frozen=True)
class RunResult:
    out: Path
    metrics: dict[str, Any]
    model: nn.Module  # the final (last-epoch) weights of this process, unwrapped


def epoch_seed(seed: int, epoch: int, rank: int) -> int:
    """Every epoch draws from its own seed, so a resumed run replays exactly what an unbroken one would."""
    return seed * 1_000_000 + rank * 1_000 + epoch


def set_deterministic(on: bool) -> None:
    torch.use_deterministic_algorithms(on, warn_only=False)
    torch.backends.cudnn.deterministic = on
    torch.backends.cudnn.benchmark = not on  # autotuned kernels are faster but may differ run to run


def build_model(cfg: TrainConfig, num_classes: int) -> nn.Module:
    torch.manual_seed(cfg.seed)
    model = create_model(cfg.arch, num_classes)
    if cfg.arch == "resnet18" and (cfg.pretrained or cfg.weights):
        load_pretrained(model, Path(cfg.weights) if cfg.weights else None)
    return model


def train_loader(data: Datasets, cfg: TrainConfig, d: Dist, epoch: int, pin: bool) -> DataLoader:
    """This epoch's loader: shuffle order and worker seeds come from epoch_seed, nothing carried over."""
    g = torch.Generator().manual_seed(epoch_seed(cfg.seed, epoch, d.rank))
    if d.enabled:
        sampler = DistributedSampler(data.train, d.world_size, d.rank, shuffle=True, seed=cfg.seed)
        sampler.set_epoch(epoch)
    else:
        sampler = RandomSampler(data.train, generator=g)
    return DataLoader(data.train, batch_size=cfg.batch_size, sampler=sampler, num_workers=cfg.workers,
                      generator=g, pin_memory=pin)


def history_row(epoch: int, stats: EpochStats, val: Evaluation | None, lr: float) -> dict[str, float]:
    return {
        "epoch": epoch, "train_loss": stats.loss, "train_acc": stats.acc,
        "val_loss": val.loss if val else math.nan, "val_acc": val.acc if val else math.nan, "lr": lr,
        "seconds": stats.seconds, "data_seconds": stats.data_seconds,
        "images_per_s": stats.images_per_s, "step_images_per_s": stats.step_images_per_s,
    }


def write_history(history: list[dict], path: Path) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, HISTORY_COLUMNS)
            w.writeheader()
            w.writerows(history)

    atomic_write(path, write)


def write_json(obj: Any, path: Path) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(obj, indent=2) + "\n"))


def check_resumable(ckpt: dict[str, Any], cfg: TrainConfig, path: Path) -> None:
    saved = ckpt["config"]
    for name in RECIPE_FIELDS:
        if saved.get(name) != getattr(cfg, name):
            raise UserError(f"{path} was trained with {name}={saved.get(name)!r}, this run has "
                            f"{getattr(cfg, name)!r}: pass the same flags to resume, or a new --out")


def train(cfg: TrainConfig, resume: bool = False, console: Console | None = None) -> RunResult:
    """Train per cfg into cfg.out; with resume, continue from cfg.out/last.pt. Returns the final metrics."""
    console = console or Console(stderr=True, soft_wrap=True)
    d = init_distributed()
    try:
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
    log(f"data: {len(data.train)} train / {len(data.val) if data.val else 0} val / {len(data.test)} test images, "
        f"{num_classes} classes, decoded in {time.perf_counter() - started:.1f}s; device {device}, "
        f"world size {d.world_size}")

    model = build_model(cfg, num_classes).to(device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(trainable, lr=cfg.lr)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg.step_size or 10**9, gamma=cfg.gamma)
    amp = cfg.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler(device.type, enabled=amp)

    history: list[dict] = []
    best_score, best_epoch, start_epoch = -1.0, None, 0
    if resume and (out / "last.pt").is_file():
        ckpt = load_checkpoint(out / "last.pt")
        check_resumable(ckpt, cfg, out / "last.pt")
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        scaler.load_state_dict(ckpt["scaler"])
        history, start_epoch = ckpt["history"], ckpt["epoch"]
        best_score, best_epoch = ckpt["best_score"], ckpt["best_epoch"]
        log(f"resumed from {out / 'last.pt'} after epoch {start_epoch}")
    elif resume:
        log(f"nothing to resume in {out}: starting a new run")

    net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None) \
        if d.enabled else model
    select_split = "val" if data.val is not None else "test"
    select_set = data.val if data.val is not None else data.test

    def checkpoint(epoch: int, metrics: dict[str, Any]) -> dict[str, Any]:
        mean, std = mean_std(cfg.arch)
        return {
            "model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict(), "epoch": epoch, "history": history, "best_score": best_score,
            "best_epoch": best_epoch, "config": asdict(cfg), "arch": cfg.arch, "classes": list(data.classes),
            "mean": list(mean), "std": list(std), "input_size": [cfg.image_size, cfg.image_size],
            "metrics": metrics, "rng": {"torch": torch.get_rng_state()},
        }

    for epoch in range(start_epoch + 1, cfg.epochs + 1):
        torch.manual_seed(epoch_seed(cfg.seed, epoch, d.rank))
        loader = train_loader(data, cfg, d, epoch, pin=device.type == "cuda")
        lr = optimizer.param_groups[0]["lr"]
        stats = train_one_epoch(net, loader, optimizer, scaler, device, amp, cfg.channels_last, d,
                                description=f"epoch {epoch}/{cfg.epochs}")
        scheduler.step()
        broadcast_buffers(model, d)
        selected = evaluate(model, select_set, num_classes, cfg.batch_size, device, amp, d, cfg.workers, select_split)
        history.append(history_row(epoch, stats, selected if data.val is not None else None, lr))
        improved = selected.acc > best_score
        if improved:
            best_score, best_epoch = selected.acc, epoch
        log(f"epoch {epoch:>3}/{cfg.epochs}  train loss {stats.loss:.4f} acc {stats.acc:6.2%}  "
            f"{select_split} loss {selected.loss:.4f} acc {selected.acc:6.2%}{' *' if improved else '  '}  "
            f"lr {lr:.2e}  {stats.seconds:5.1f}s ({stats.images_per_s:.0f} img/s, "
            f"model only {stats.step_images_per_s:.0f} img/s)")
        if d.is_main:
            metrics = {f"{select_split}_acc": selected.acc, f"{select_split}_loss": selected.loss, "epoch": epoch}
            if improved:
                save_checkpoint(out / "best.pt", without_training_state(checkpoint(epoch, metrics)))
            save_checkpoint(out / "last.pt", checkpoint(epoch, metrics))  # after best.pt: resume never skips one
            write_history(history, out / "history.csv")

    metrics = finish(cfg, data, out, device, amp, d, history, select_split, time.perf_counter() - started, log)
    return RunResult(out=out, metrics=metrics, model=model)


def finish(cfg: TrainConfig, data: Datasets, out: Path, device: torch.device, amp: bool, d: Dist,
           history: list[dict], select_split: str, seconds: float, log: Any) -> dict[str, Any]:
    """Evaluate the selected checkpoint once on test (and val), write metrics.json and the plots."""
    if d.enabled:
        torch.distributed.barrier()  # rank 0 has finished writing best.pt
    best = load_checkpoint(out / "best.pt")
    model = create_model(cfg.arch, len(data.classes)).to(device)
    model.load_state_dict(best["model"])
    args = (len(data.classes), cfg.batch_size, device, amp, d, cfg.workers)
    test = evaluate(model, data.test, *args, description="test")
    val = evaluate(model, data.val, *args, description="val") if data.val is not None else None
    epochs = [h for h in history if h["epoch"] > 0]
    metrics = {
        "arch": cfg.arch,
        "best_epoch": best["epoch"],
        "epochs": len(history),
        "selected_on": select_split,
        "selection_note": "best epoch chosen on the held-out validation split; test evaluated once"
        if select_split == "val" else
        "--val-size 0: best epoch chosen on the test split (the seed's behaviour), so test accuracy is optimistic",
        "val_acc": val.acc if val else None,
        "val_loss": val.loss if val else None,
        "test_acc": test.acc,
        "test_loss": test.loss,
        "test": classification_report(test.confusion, data.classes),
        "val": classification_report(val.confusion, data.classes) if val else None,
        "data": {"source": cfg.data or "torchvision CIFAR10", "train": len(data.train),
                 "val": len(data.val) if data.val else 0, "test": len(data.test)},
        "seed": cfg.seed,
        "config": asdict(cfg),
        "timing": {
            "epochs_seconds": sum(h["seconds"] for h in epochs),  # all epochs, across resumes
            "process_seconds": seconds,  # this process only: decoding, its epochs, the final evaluation
            "mean_epoch_seconds": _mean(h["seconds"] for h in epochs),
            "mean_data_wait_seconds": _mean(h["data_seconds"] for h in epochs),
            "mean_images_per_s": _mean(h["images_per_s"] for h in epochs),
            "mean_step_images_per_s": _mean(h["step_images_per_s"] for h in epochs),
        },
        "environment": {"torch": torch.__version__, "device": str(device), "world_size": d.world_size,
                        "python": platform.python_version(), "cpu_threads": torch.get_num_threads(),
                        "cuda_device": torch.cuda.get_device_name(device) if device.type == "cuda" else None},
    }
    log(f"best epoch {best['epoch']} (selected on {select_split}): "
        + (f"val acc {val.acc:.2%}, " if val else "") + f"test acc {test.acc:.2%}  -> {out}")
    if d.is_main:
        best["metrics"] = {**best["metrics"], "val_acc": metrics["val_acc"], "val_loss": metrics["val_loss"],
                           "test_acc": test.acc, "test_loss": test.loss}
        save_checkpoint(out / "best.pt", without_training_state(best))
        write_json(metrics, out / "metrics.json")
        title = f"{cfg.arch} on CIFAR-10"
        plot_curves(history, out / "curves.png", title, best["epoch"] if select_split == "val" else None)
        plot_confusion(metrics["test"]["confusion_matrix"], list(data.classes), out / "confusion.png",
                       f"{title}: test confusion (acc {test.acc:.2%})")
    return metrics


def _mean(values: Any) -> float | None:
    values = list(values)
    return sum(values) / len(values) if values else None
