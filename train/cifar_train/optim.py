"""Optimizer, learning-rate schedule, weight lookahead and the recipe's initialisations, built from a TrainConfig.

SGD hyperparameters are in airbench's decoupled units: `lr` and `weight_decay` are per 1024 images and do not move
when momentum or batch size change. With Nesterov momentum m, a step of constant gradients grows by 1 + 1/(1 - m),
so the torch learning rate (on a batch-mean loss) is lr * batch / (1024 * (1 + 1/(1 - m))); the decay per step is
weight_decay * batch / (1024 * (1 + 1/(1 - m))), whatever the group's learning rate.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from cifar_train.config import TrainConfig
from cifar_train.errors import UserError


def batchnorm_params(model: nn.Module) -> list[nn.Parameter]:
    return [p for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) for p in m.parameters()]


def build_optimizer(model: nn.Module, cfg: TrainConfig, head: str = "") -> torch.optim.Optimizer:
    """Adam (the seeds) or Nesterov SGD; parameter groups by learning-rate multiplier (BatchNorm, backbone)."""
    bn_ids = {id(p) for p in batchnorm_params(model)}
    groups: dict[float, list[nn.Parameter]] = {}  # lr multiplier -> parameters
    for name, p in model.named_parameters():
        if p.requires_grad:
            scale = cfg.bn_bias_lr_scale if id(p) in bn_ids else 1.0
            if head and not name.startswith(head + "."):
                scale *= cfg.backbone_lr_scale
            groups.setdefault(scale, []).append(p)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(
            [{"params": ps, "lr": cfg.lr * s} for s, ps in groups.items()], lr=cfg.lr, weight_decay=cfg.weight_decay
        )
    if cfg.optimizer == "sgd":
        steps_scale = 1024 * (1 + 1 / (1 - cfg.momentum))
        lr = cfg.lr * cfg.batch_size / steps_scale
        decay = cfg.weight_decay * cfg.batch_size / steps_scale  # per step, independent of the group's lr
        return torch.optim.SGD(
            [{"params": ps, "lr": lr * s, "weight_decay": decay / (lr * s) if s else 0.0} for s, ps in groups.items()],
            lr=lr,
            momentum=cfg.momentum,
            nesterov=True,
        )
    raise UserError(f"unknown optimizer {cfg.optimizer!r}: adam or sgd")


def lr_factor(cfg: TrainConfig, step: int, steps_per_epoch: int) -> float:
    """Multiplier of the base learning rate before optimizer step `step` (0-based)."""
    if cfg.schedule == "step":
        epoch = step // steps_per_epoch
        return cfg.gamma ** (epoch // cfg.step_size) if cfg.step_size else 1.0
    if cfg.schedule == "triangle":
        total = cfg.epochs * steps_per_epoch
        peak = int(cfg.peak_at * total)
        if step < peak:
            return cfg.warmup_from + (1 - cfg.warmup_from) * step / peak
        return 1 + (cfg.decay_to - 1) * (step - peak) / max(total - peak, 1)
    if cfg.schedule == "onecycle":
        total = cfg.epochs * steps_per_epoch
        peak = max(int(cfg.peak_at * total), 1)
        if step < peak:
            return cfg.warmup_from + (1 - cfg.warmup_from) * step / peak
        return 0.5 * (1 + math.cos(math.pi * (step - peak) / max(total - peak, 1)))
    raise UserError(f"unknown schedule {cfg.schedule!r}: step, triangle or onecycle")


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-step schedule (scheduler.step() after every optimizer step)."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(cfg, step, steps_per_epoch))


class Lookahead:
    """An exponential average of the weights, copied back into the net at each update (airbench's lookahead).

    The decay warms up over training, 0.95 ** every * (step / total) ** 3: the net moves freely at first and is
    averaged strongly at the end.
    """

    def __init__(self, model: nn.Module, every: int, total_steps: int) -> None:
        self.every, self.total_steps = every, total_steps
        self.average = {k: v.detach().clone() for k, v in model.state_dict().items() if v.is_floating_point()}

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        decay = 0.95**self.every * (step / self.total_steps) ** 3
        self.blend(model, decay)

    @torch.no_grad()
    def blend(self, model: nn.Module, decay: float) -> None:
        """average <- decay * average + (1 - decay) * weights; weights <- average. decay 1 copies the average in."""
        state = model.state_dict()
        for k, avg in self.average.items():
            avg.lerp_(state[k], 1 - decay)
            state[k].copy_(avg)


def prepare_model(model: nn.Module, cfg: TrainConfig, whitening_images: torch.Tensor | None) -> None:
    """Apply the recipe's initialisations (before the optimizer is built: frozen tensors stay out of it)."""
    if cfg.dirac_init:
        for m in model.modules():
            if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3) and m.groups == 1:
                with torch.no_grad():
                    n = min(m.out_channels, m.in_channels)
                    nn.init.dirac_(m.weight[:n])  # filter i passes input channel i through: an implicit residual
    prefixes = tuple(p.strip() + "." for p in cfg.unfreeze.split(",") if p.strip())
    if prefixes:
        names = [name for name, _ in model.named_parameters()]
        unknown = [p[:-1] for p in prefixes if not any(n.startswith(p) for n in names)]
        if unknown:
            raise UserError(f"--unfreeze {','.join(unknown)}: {cfg.arch} has no parameters named so")
        for name, p in model.named_parameters():
            if name.startswith(prefixes):
                p.requires_grad = True
    if cfg.freeze_bn_scale:
        for p in (m.weight for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)):
            p.requires_grad = False
    if cfg.whiten_init:
        init = getattr(model, "init_whitening", None)
        if init is None:
            raise UserError(f"--whiten-init needs an architecture with a whitening layer; {cfg.arch} has none")
        init(whitening_images)


def whitening_bias_trains(model: nn.Module, cfg: TrainConfig, epoch: int) -> None:
    """The whitening conv's bias trains for the first whiten_bias_epochs epochs (1-based), then stays fixed."""
    if cfg.whiten_init:
        model.whiten.bias.requires_grad = epoch <= cfg.whiten_bias_epochs
