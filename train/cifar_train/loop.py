"""One training epoch and one evaluation pass, shared by CPU, CUDA and torchrun runs."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from cifar_train.config import TrainConfig
from cifar_train.distributed import Dist, all_reduce_sum
from cifar_train.metrics import accuracy, confusion_matrix


@dataclass(frozen=True)
class EpochStats:
    loss: float
    acc: float
    seconds: float  # wall time of the epoch, data pipeline included
    data_seconds: float  # time spent waiting for the next batch
    images: int  # images this process trained on

    @property
    def images_per_s(self) -> float:
        return self.images / self.seconds

    @property
    def step_images_per_s(self) -> float:
        """Model-only throughput: forward + backward + optimizer step, data waits excluded."""
        return self.images / max(self.seconds - self.data_seconds, 1e-9)


@dataclass(frozen=True)
class Evaluation:
    loss: float
    confusion: torch.Tensor  # (C, C) counts over all ranks
    logits: torch.Tensor  # (N, C) float32 of this rank's images (ROC curves, temperature scaling)
    labels: torch.Tensor  # (N,) their true classes

    @property
    def acc(self) -> float:
        return accuracy(self.confusion)

    @property
    def probs(self) -> torch.Tensor:
        """(N, C) softmax probabilities of this rank's images."""
        return self.logits.softmax(1)


def _progress(description: str, enabled: bool) -> Progress:
    """A transient bar on stderr; off on non-main ranks and when stderr is not a terminal (logs, nohup)."""
    console = Console(stderr=True)
    return Progress(
        TextColumn(f"[bold]{description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not (enabled and console.is_terminal),
    )


def amp_dtype(device: torch.device) -> torch.dtype:
    """The mixed-precision type of a device: float16 on CUDA, bfloat16 on CPU (float16 has no fast CPU kernels)."""
    return torch.float16 if device.type == "cuda" else torch.bfloat16


def native_bf16() -> bool:
    """Whether this CPU computes bfloat16 in hardware (AVX512-BF16 or AMX); elsewhere bf16 is emulated, slower."""
    checks = (getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))
    return any(check() for check in checks if check is not None)


def autocast(device: torch.device, amp: bool) -> torch.autocast:
    """Mixed precision when amp is on; a disabled context (fp32) otherwise."""
    return torch.autocast(device_type=device.type, dtype=amp_dtype(device), enabled=amp)


@dataclass(frozen=True)
class StepOptions:
    """How one optimizer step runs: precision, memory format, loss, and gradient accumulation."""

    amp: bool = False  # autocast: float16 on CUDA, bfloat16 on CPU
    channels_last: bool = False
    label_smoothing: float = 0.0
    micro_batch: int = 0  # forward/backward in chunks of this many images, one optimizer step; 0 = whole batch
    distill_weight: float = 0.0  # share of the loss that matches the teachers' soft targets (batches carry them)
    distill_temperature: float = 1.0


def step_options(cfg: TrainConfig, device: torch.device, channels_last: bool) -> StepOptions:
    """The step options of a config on a device: --amp reaches CUDA only, --cpu-amp the CPU only."""
    amp = cfg.amp if device.type == "cuda" else cfg.cpu_amp if device.type == "cpu" else False
    return StepOptions(
        amp, channels_last, cfg.label_smoothing, cfg.micro_batch, cfg.distill_weight, cfg.distill_temperature
    )


def distillation_loss(logits: torch.Tensor, soft: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(teachers || student) at `temperature`, times temperature^2 so that its gradients keep their size."""
    log_student = F.log_softmax(logits.float() / temperature, dim=1)
    return F.kl_div(log_student, soft, reduction="batchmean") * temperature**2


def step_loss(logits: torch.Tensor, y: torch.Tensor, soft: torch.Tensor | None, opts: StepOptions) -> torch.Tensor:
    """Cross-entropy on the labels; with soft targets, mixed with the distillation loss by opts.distill_weight."""
    loss = F.cross_entropy(logits, y, label_smoothing=opts.label_smoothing)
    if soft is None:
        return loss
    w = opts.distill_weight
    return (1 - w) * loss + w * distillation_loss(logits, soft, opts.distill_temperature)


def grad_scaler(device: torch.device, opts: StepOptions) -> torch.amp.GradScaler:
    """Loss scaling for float16 (CUDA) only: bfloat16 has float32's range and needs none."""
    return torch.amp.GradScaler(device.type, enabled=opts.amp and device.type == "cuda")


def train_one_epoch(
    model: nn.Module,
    loader: Iterable[tuple[torch.Tensor, ...]],
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    device: torch.device,
    opts: StepOptions,
    d: Dist,
    description: str = "train",
    after_step: Callable[[], None] | None = None,
) -> EpochStats:
    """One pass over `loader`, whose batches are (x, y) or, when distilling, (x, y, soft targets); after_step runs
    after every optimizer step (schedulers, weight averaging)."""
    model.train()
    memory_format = torch.channels_last if opts.channels_last else torch.contiguous_format
    totals = torch.zeros(3, dtype=torch.float64, device=device)  # loss sum, correct, images; no per-step sync
    data_seconds = 0.0
    start = time.perf_counter()
    with _progress(description, d.is_main) as bar:
        task = bar.add_task("", total=len(loader), info="")
        tick = time.perf_counter()
        for batch in loader:  # x: (B, 3, H, W) float32 normalised, y: (B,), soft: (B, C) probabilities
            data_seconds += time.perf_counter() - tick
            x = batch[0].to(device, non_blocking=True, memory_format=memory_format)
            y = batch[1].to(device, non_blocking=True)
            soft = batch[2].to(device, non_blocking=True) if len(batch) > 2 else None
            optimizer.zero_grad(set_to_none=True)
            chunk = opts.micro_batch or len(x)
            softs = soft.split(chunk) if soft is not None else [None] * len(x.split(chunk))
            for xc, yc, sc in zip(x.split(chunk), y.split(chunk), softs, strict=True):
                with autocast(device, opts.amp):
                    logits = model(xc)
                    loss = step_loss(logits, yc, sc, opts)
                scaler.scale(loss * (len(yc) / len(y))).backward()  # chunks add up to the batch-mean gradient
                totals[0] += loss.detach() * len(yc)
                totals[1] += (logits.argmax(1) == yc).sum()
                totals[2] += len(yc)
            scaler.step(optimizer)
            scaler.update()
            if after_step:
                after_step()
            if bar.tasks[task].completed % 20 == 0:  # reading the loss syncs the GPU: not every step
                bar.update(task, info=f"loss {float(totals[0] / totals[2]):.3f}")
            bar.update(task, advance=1)
            tick = time.perf_counter()
    seconds = time.perf_counter() - start
    totals = totals.cpu()
    images = int(totals[2])
    all_reduce_sum(totals, d)
    return EpochStats(float(totals[0] / totals[2]), float(totals[1] / totals[2]), seconds, data_seconds, images)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    dataset: Dataset,
    num_classes: int,
    batch_size: int,
    device: torch.device,
    opts: StepOptions,
    d: Dist,
    workers: int = 0,
    description: str = "eval",
) -> Evaluation:
    """Loss and confusion matrix over the whole dataset; under torchrun each rank takes every world_size-th image."""
    model.eval()
    memory_format = torch.channels_last if opts.channels_last else torch.contiguous_format
    shard = Subset(dataset, range(d.rank, len(dataset), d.world_size))  # exact cover, no padding duplicates
    loader = DataLoader(shard, batch_size=batch_size, shuffle=False, num_workers=workers)
    loss_sum = torch.zeros(1, dtype=torch.float64)
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.int64)
    outputs, labels = [], []
    with _progress(description, d.is_main) as bar:
        task = bar.add_task("", total=len(loader), info="")
        for x, y in loader:
            x = x.to(device, non_blocking=True, memory_format=memory_format)
            y = y.to(device, non_blocking=True)
            with autocast(device, opts.amp):
                logits = model(x)
            loss_sum += F.cross_entropy(logits.float(), y, reduction="sum").item()
            confusion += confusion_matrix(logits.argmax(1).cpu(), y.cpu(), num_classes)
            outputs.append(logits.float().cpu())
            labels.append(y.cpu())
            bar.update(task, advance=1)
    all_reduce_sum(loss_sum, d)
    all_reduce_sum(confusion, d)
    return Evaluation(
        float(loss_sum / confusion.sum().clamp(min=1)),
        confusion,
        torch.cat(outputs) if outputs else torch.zeros(0, num_classes),
        torch.cat(labels) if labels else torch.zeros(0, dtype=torch.int64),
    )
