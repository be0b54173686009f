"""A whole training run: data, model, epochs with checkpoints and resume, then one test pass on the best model."""

from __future__ import annotations

import csv
import math
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

from cifar_train.augment import BatchAugmentLoader, epoch_seed, normalize
from cifar_train.checkpoint import atomic_write, build_checkpoint, ensure_writable, load_checkpoint, save_checkpoint
from cifar_train.config import RUN_FIELDS, TrainConfig, validate_config
from cifar_train.data import Datasets, build_datasets
from cifar_train.dataset import portable  # noqa: F401  (a public helper of runs)
from cifar_train.distill import CACHE, teacher_probabilities
from cifar_train.distributed import Dist, broadcast_buffers, init_distributed, select_device, shutdown
from cifar_train.errors import UserError
from cifar_train.finish import finish
from cifar_train.loop import (
    EpochStats,
    Evaluation,
    evaluate,
    grad_scaler,
    native_bf16,
    step_options,
    train_one_epoch,
)
from cifar_train.models import get_spec
from cifar_train.optim import Lookahead, build_optimizer, build_scheduler, prepare_model, whitening_bias_trains
from cifar_train.record import RunRecord
from cifar_train.tblog import TensorBoardLog, check_tensorboard

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
    record: RunRecord  # what metrics.json holds
    model: nn.Module  # the final (last-epoch) weights of this process, unwrapped

    @property
    def metrics(self) -> dict[str, Any]:
        """The record as metrics.json holds it."""
        return self.record.to_json()


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
        return BatchAugmentLoader(
            data.train.images,
            data.train.labels,
            data.info.mean,
            data.info.std,
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
    data, cfg = build_datasets(cfg, log)  # cfg: with the size-dependent defaults fitted to the data
    num_classes, info = len(data.classes), data.info
    log(
        f"data: {len(data.train)} train / {len(data.val) if data.val else 0} val / {len(data.test)} test images, "
        f"{num_classes} classes (largest/smallest {info.imbalance:.1f}x), input {cfg.image_size}x{cfg.image_size} "
        f"(files: {', '.join(list(info.sizes)[:3])}), mean/std {info.statistics}; decoded in "
        f"{time.perf_counter() - started:.1f}s; device {device}, world size {d.world_size}"
    )

    model = build_model(cfg, num_classes)
    spec = get_spec(cfg.arch)
    whitening = data.train.images[:5000] if cfg.whiten_init else None
    prepare_model(
        model,
        cfg,
        normalize(whitening, torch.tensor(info.mean), torch.tensor(info.std)) if whitening is not None else None,
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
            cfg.teachers, cfg.distill_temperature, data.train.images, data.classes, device, out / CACHE, log, opts.amp
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
            dataset=info,
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

    record = finish(cfg, data, out, device, opts, d, history, select_split, time.perf_counter() - started, log)
    if board:
        board.finish(
            record.config, {"val_acc": record.val_acc, "test_acc": record.test_acc, "test_loss": record.test_loss}
        )
    return RunResult(out=out, record=record, model=model)
