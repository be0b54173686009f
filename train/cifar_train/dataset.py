"""What a run's data is, described once, beside the weights (timm's pretrained_cfg, torchvision's Weights.meta): its
classes, sizes and modes, the input size the images are brought to, and the mean/std they are normalised with. It is
recorded in the checkpoint (`dataset`), in metrics.json, and in every exported file's metadata.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from cifar_train.models import CIFAR_MEAN_STD, ModelSpec

if TYPE_CHECKING:
    from cifar_train.config import TrainConfig
    from cifar_train.images import ImageSet

CIFAR10 = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


@dataclass(frozen=True)
class DatasetInfo:
    source: str  # the --data folder as given (or "torchvision CIFAR10")
    name: str  # "CIFAR-10" when it is, else "image folder <source's name>"
    classes: tuple[str, ...]
    input_size: tuple[int, int]  # (H, W) every image is brought to
    mean: tuple[float, float, float]  # per RGB channel, on [0, 1]
    std: tuple[float, float, float]
    statistics: str  # where mean/std come from
    train_counts: dict[str, int]  # images per class in train/ (before the validation split)
    test_counts: dict[str, int]
    sizes: dict[str, int]  # "WxH" in the files -> count, train and test
    modes: dict[str, int]  # Pillow mode in the files -> count
    unreadable: int = 0  # files of the folder that could not be read, left out (the run's log names the first)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def imbalance(self) -> float:
        """Images of the largest class over those of the smallest, in train/."""
        counts = list(self.train_counts.values())
        return max(counts) / max(min(counts), 1)


def describe(cfg: TrainConfig, spec: ModelSpec, train: ImageSet, test: ImageSet, fit: torch.Tensor) -> DatasetInfo:
    """The data's description; mean/std are the architecture's fixed normalisation if it has one, the published
    CIFAR-10 statistics for CIFAR-10 at 32x32, else computed from `fit`, the training images (N, 3, H, W) uint8."""
    size = cfg.image_size
    cifar = train.classes == CIFAR10 and set(train.sizes or {"32x32"}) == {"32x32"} and size == 32
    if spec.normalisation is not None:
        (mean, std), statistics = spec.normalisation, f"fixed by {spec.name}"
    elif cifar:
        (mean, std), statistics = CIFAR_MEAN_STD, "CIFAR-10's published training-set statistics"
    else:
        mean, std = _statistics(fit)
        statistics = f"computed from the {len(fit)} training images"
    return DatasetInfo(
        source=portable(cfg.data) if cfg.data else "torchvision CIFAR10",
        name="CIFAR-10" if cifar else f"image folder {_name(cfg.data)}",
        classes=train.classes,
        input_size=(size, size),
        mean=mean,
        std=std,
        statistics=statistics,
        train_counts=_counts(train),
        test_counts=_counts(test),
        sizes=dict((train.sizes + test.sizes).most_common()),
        modes=dict((train.modes + test.modes).most_common()),
        unreadable=len(train.skipped) + len(test.skipped),
    )


def _statistics(images: torch.Tensor) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """Per-channel mean and std of uint8 (N, 3, H, W) images on [0, 1], rounded to 4 decimals (as published ones)."""
    x = images.to(torch.float64) / 255
    mean = x.mean(dim=(0, 2, 3))
    std = x.std(dim=(0, 2, 3)).clamp(min=1e-3)  # a constant channel (grayscale) would divide by zero
    return tuple(round(float(m), 4) for m in mean), tuple(round(float(s), 4) for s in std)  # type: ignore[return-value]


def _counts(images: ImageSet) -> dict[str, int]:
    counts = Counter(int(i) for i in images.labels)
    return {name: counts.get(i, 0) for i, name in enumerate(images.classes)}


def _name(source: str) -> str:
    return Path(source).resolve().name if source else "data"


def portable(path: str) -> str:
    """A path as it should be recorded: relative to the working directory, never this machine's absolute path."""
    return os.path.relpath(path) if path and os.path.isabs(path) else path
