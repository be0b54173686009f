"""How fast does training go, and is the data pipeline the bottleneck? Model-only vs pipeline vs both."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import torch

from cifar_train.config import TrainConfig
from cifar_train.data import build_datasets
from cifar_train.distributed import Dist, select_device
from cifar_train.errors import UserError
from cifar_train.loop import amp_dtype, grad_scaler, step_options, train_one_epoch
from cifar_train.optim import build_optimizer
from cifar_train.run import build_model, train_loader


@dataclass(frozen=True)
class BenchRow:
    name: str
    images_per_s: float
    seconds_per_epoch: float  # extrapolated to the full train split


def bench_training(cfg: TrainConfig, steps: int) -> tuple[list[BenchRow], dict[str, Any]]:
    """Time `steps` batches of: augmentation alone, train steps on one preloaded batch, and the two together."""
    device = select_device(cfg.device)
    started = time.perf_counter()
    data, cfg = build_datasets(cfg, lambda line: None)
    amp = step_options(cfg, device, cfg.channels_last).amp
    info = {
        "decode_seconds": time.perf_counter() - started,
        "train_images": len(data.train),
        "threads": torch.get_num_threads(),
        "device": str(device),
        "precision": f"{str(amp_dtype(device)).removeprefix('torch.')} autocast" if amp else "fp32",
    }

    def row(name: str, images: int, seconds: float) -> BenchRow:
        return BenchRow(name, images / seconds, len(data.train) / (images / seconds))

    if len(train_loader(data, cfg, Dist(), 2, pin=False)) == 0:
        raise UserError(
            f"--batch-size {cfg.batch_size} is larger than the {len(data.train)} training images: pass a smaller one"
        )
    tick = time.perf_counter()
    batches = list(itertools.islice(iter(train_loader(data, cfg, Dist(), 2, pin=False)), steps))
    n = sum(len(y) for _, y in batches)
    rows = [
        row(f"data pipeline only ({cfg.augment} augmentation, workers={cfg.workers})", n, time.perf_counter() - tick)
    ]
    x, y = batches[0]
    for channels_last in (False, True):
        model = build_model(replace(cfg, pretrained=False, weights=""), len(data.classes)).to(device)
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        opt = build_optimizer(model, cfg)
        opts = step_options(cfg, device, channels_last)
        scaler = grad_scaler(device, opts)
        train_one_epoch(model, [(x, y)] * 3, opt, scaler, device, opts, Dist())  # warm-up
        stats = train_one_epoch(model, [(x, y)] * steps, opt, scaler, device, opts, Dist())
        fmt = "channels_last" if channels_last else "contiguous"
        rows.append(row(f"train step, model only ({fmt})", stats.images, stats.seconds))
        if channels_last == cfg.channels_last:  # the full step in the memory format training will use
            stats = train_one_epoch(
                model, _Timed(train_loader(data, cfg, Dist(), 3, pin=False), steps), opt, scaler, device, opts, Dist()
            )
            full = row(f"train step + data pipeline ({fmt})", stats.images, stats.seconds)
    rows.append(full)
    return rows, info


class _Timed:
    """The first `steps` batches of a loader, produced as training asks for them (so their cost is timed)."""

    def __init__(self, loader: Iterable, steps: int) -> None:
        self.loader, self.steps = loader, steps

    def __len__(self) -> int:
        return self.steps

    def __iter__(self) -> Iterator:
        return itertools.islice(iter(self.loader), self.steps)
