"""From decoded images to training: hold out a stratified validation split, fit the recipe's size-dependent
defaults to the data, describe it, and augment. Decoding (cifar_train.images) is done once up front, so epochs
never touch the disk again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from torch.utils.data import Dataset
from torchvision.transforms import v2

from cifar_train.config import TrainConfig
from cifar_train.dataset import DatasetInfo, describe
from cifar_train.errors import UserError
from cifar_train.images import load_splits, split_dir
from cifar_train.models import get_spec


def stratified_split(labels: torch.Tensor, val_size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(train_idx, val_idx): val_size indices held out, each class in proportion to its share."""
    if not 0 <= val_size < len(labels):
        raise UserError(f"--val-size {val_size} must be between 0 and {len(labels) - 1} (the train set size)")
    g = torch.Generator().manual_seed(seed)
    classes, counts = labels.unique(return_counts=True)
    quota = (counts * val_size) // len(labels)
    # Hand out the rounding remainder to the largest classes so the total is exactly val_size.
    for i in torch.argsort(counts, descending=True, stable=True)[: val_size - int(quota.sum())]:
        quota[i] += 1
    val = []
    for c, q in zip(classes, quota, strict=True):
        idx = (labels == c).nonzero().flatten()
        val.append(idx[torch.randperm(len(idx), generator=g)[: int(q)]])
    val_idx = torch.cat(val).sort().values
    keep = torch.ones(len(labels), dtype=torch.bool)
    keep[val_idx] = False
    return keep.nonzero().flatten(), val_idx


def train_transform(cfg: TrainConfig, info: DatasetInfo, stored: int) -> v2.Transform:
    """Per-sample training augmentation (the architecture's own, plus the recipe's extras) on uint8 (3, H, W) images
    stored at `stored` pixels a side."""
    spec = get_spec(cfg.arch)
    extras = [v2.RandomRotation(cfg.rotation)] if cfg.rotation else []
    erase = [v2.RandomErasing(p=1.0, scale=_square(cfg.cutout, cfg.image_size), ratio=(1.0, 1.0))] if cfg.cutout else []
    return v2.Compose(
        [
            *_resize(stored, cfg.image_size, spec.resize_on_the_fly),
            *spec.augment(cfg.image_size),
            *extras,
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(info.mean, info.std),
            *erase,
        ]
    )


def _square(side: int, image_size: int) -> tuple[float, float]:
    area = min(side / image_size, 1.0) ** 2
    return area, area


def _resize(stored: int, size: int, augment_resizes: bool = False) -> list[v2.Transform]:
    """Resize (bilinear, antialiased) from the stored side to the input side, when they differ (and the
    architecture's augmentation does not resize by itself)."""
    return [] if stored == size or augment_resizes else [v2.Resize((size, size), antialias=True)]


def eval_transform(
    image_size: int, mean: tuple[float, ...], std: tuple[float, ...], stored: int | None = None
) -> v2.Transform:
    """Deterministic eval preprocessing of uint8 (3, stored, stored) images: resize to the input side when it
    differs, scale to [0, 1], normalise."""
    return v2.Compose(
        [*_resize(stored or image_size, image_size), v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)]
    )


class TensorImageDataset(Dataset):
    """Indexes into a decoded ImageSet and applies a per-sample transform."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform: v2.Transform) -> None:
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.transform(self.images[i]), int(self.labels[i])


@dataclass(frozen=True)
class Datasets:
    train: TensorImageDataset
    val: TensorImageDataset | None  # None when --val-size 0
    test: TensorImageDataset
    classes: tuple[str, ...]
    info: DatasetInfo  # what the data is: recorded in the checkpoint and every exported file


def build_datasets(cfg: TrainConfig, log: Callable[[str], None] = print) -> tuple[Datasets, TrainConfig]:
    """Decode once, fit the recipe's size-dependent defaults to the data, split train into train/val, describe the
    data, attach the transforms. Returns the datasets and the config the run uses (the fitted one)."""
    train, test = load_splits(cfg)
    tested = split_dir(Path(cfg.data or "data"), "test")
    if tested.name != "test" and tested.is_dir():
        log(f"no test/ folder: {tested} is the test split, scored once; validation is held out of train/")
    skipped = train.skipped + test.skipped
    if skipped:
        path, why = skipped[0]
        log(f"skipped {len(skipped)} file(s) that cannot be read, the run uses the rest (first: {path}: {why})")
    cfg = fit_to_data(cfg, len(train.labels), len(train.classes), log)
    train_idx, val_idx = stratified_split(train.labels, cfg.val_size, cfg.split_seed)
    info = describe(cfg, get_spec(cfg.arch), train, test, train.images[train_idx])
    stored = train.images.shape[-1]
    ev = eval_transform(cfg.image_size, info.mean, info.std, stored)
    val = None
    if len(val_idx):
        val = TensorImageDataset(train.images[val_idx], train.labels[val_idx], ev)
    datasets = Datasets(
        train=TensorImageDataset(train.images[train_idx], train.labels[train_idx], train_transform(cfg, info, stored)),
        val=val,
        test=TensorImageDataset(test.images, test.labels, ev),
        classes=train.classes,
        info=info,
    )
    return datasets, cfg


def fit_to_data(cfg: TrainConfig, images: int, classes: int, log: Callable[[str], None]) -> TrainConfig:
    """The recipe's size-dependent defaults fitted to a small dataset, each change said in one line: a validation
    split of at most a fifth of the training images, and at least 8 steps an epoch. Only values left at the recipe's
    default move; one a user set is kept (and refused later, saying why, if the data cannot take it)."""
    from cifar_train.config import RECIPES, recipe_and_flags

    recipe = RECIPES[recipe_and_flags(asdict(cfg))[0]].config
    default = {
        name for name in ("val_size", "batch_size", "micro_batch") if getattr(cfg, name) == getattr(recipe, name)
    }
    changes: dict[str, int] = {}
    if "val_size" in default and cfg.val_size > images // 5:
        changes["val_size"] = max(classes, images // 10)
    remaining = images - changes.get("val_size", cfg.val_size)
    if "batch_size" in default and remaining // cfg.batch_size < MIN_STEPS:
        batch = 1 << (max(remaining // MIN_STEPS, 1).bit_length() - 1)  # the largest power of two that fits
        changes["batch_size"] = batch
        if cfg.micro_batch >= batch:
            changes["micro_batch"] = 0  # chunks are for speed on large batches; a small batch needs none
    if changes:
        said = ", ".join(f"--{k.replace('_', '-')} {getattr(cfg, k)} -> {v}" for k, v in changes.items())
        log(f"fitted to {images} training images: {said}")
    return replace(cfg, **changes)


MIN_STEPS = 8  # optimizer steps per epoch below which a recipe's default batch is halved to fit the data
