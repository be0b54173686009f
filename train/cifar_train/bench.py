"""How fast does training go, and is the data pipeline the bottleneck? Model-only vs pipeline vs both."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import torch
from torch.utils.data import DataLoader, Subset

from cifar_train.config import TrainConfig
from cifar_train.data import build_datasets
from cifar_train.distributed import Dist, select_device
from cifar_train.loop import train_one_epoch
from cifar_train.run import build_model


@dataclass(frozen=True)
class BenchRow:
    name: str
    images_per_s: float
    seconds_per_epoch: float  # extrapolated to the full train split


def bench_training(cfg: TrainConfig, steps: int) -> tuple[list[BenchRow], dict[str, float]]:
    """Time `steps` batches of: augmentation alone, train steps on one preloaded batch, and the two together."""
    device = select_device(cfg.device)
    started = time.perf_counter()
    data = build_datasets(cfg)
    info = {"decode_seconds": time.perf_counter() - started, "train_images": len(data.train),
            "threads": torch.get_num_threads(), "device": str(device)}
    n = min(steps * cfg.batch_size, len(data.train))
    loader = DataLoader(Subset(data.train, range(n)), batch_size=cfg.batch_size, shuffle=True,
                        num_workers=cfg.workers)

    def row(name: str, images: int, seconds: float) -> BenchRow:
        return BenchRow(name, images / seconds, len(data.train) / (images / seconds))

    tick = time.perf_counter()
    batches = list(loader)
    rows = [row(f"data pipeline only (workers={cfg.workers})", n, time.perf_counter() - tick)]
    x, y = batches[0]
    amp = cfg.amp and device.type == "cuda"
    for channels_last in (False, True):
        model = build_model(replace(cfg, pretrained=False, weights=""), len(data.classes)).to(device)
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=cfg.lr)
        scaler = torch.amp.GradScaler(device.type, enabled=amp)
        train_one_epoch(model, [(x, y)] * 3, opt, scaler, device, amp, channels_last, Dist())  # warm-up
        stats = train_one_epoch(model, [(x, y)] * steps, opt, scaler, device, amp, channels_last, Dist())
        fmt = "channels_last" if channels_last else "contiguous"
        rows.append(row(f"train step, model only ({fmt})", stats.images, stats.seconds))
        if channels_last == cfg.channels_last:  # the full step in the memory format training will use
            stats = train_one_epoch(model, loader, opt, scaler, device, amp, channels_last, Dist())
            full = row(f"train step + data pipeline ({fmt})", stats.images, stats.seconds)
    rows.append(full)
    return rows, info
