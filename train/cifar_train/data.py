"""Load CIFAR-10 once into uint8 tensors, hold out a stratified validation split, augment per sample.

Decoding is done once up front (60k JPEGs take seconds), so epochs never touch the disk again.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision.transforms import v2

from cifar_train.config import TrainConfig
from cifar_train.errors import UserError
from cifar_train.models import get_spec

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".ppm", ".tif", ".tiff"}


@dataclass(frozen=True)
class ImageSet:
    images: torch.Tensor  # (N, 3, H, W) uint8
    labels: torch.Tensor  # (N,) int64
    classes: tuple[str, ...]


def scan_image_folder(split_dir: Path) -> tuple[list[Path], list[int], tuple[str, ...]]:
    """Files of an ImageFolder split: <split_dir>/<class>/<image>, classes sorted by name."""
    if not split_dir.is_dir():
        raise UserError(f"{split_dir} is not a folder: --data needs train/<class>/* and test/<class>/*")
    classes = tuple(sorted(d.name for d in split_dir.iterdir() if d.is_dir()))
    if not classes:
        raise UserError(f"{split_dir} has no class folders: expected {split_dir}/<class>/<image files>")
    paths: list[Path] = []
    labels: list[int] = []
    for index, name in enumerate(classes):
        files = sorted(p for p in (split_dir / name).iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
        if not files:
            raise UserError(f"class folder {split_dir / name} holds no image files")
        paths += files
        labels += [index] * len(files)
    return paths, labels, classes


def _decode(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))  # (H, W, 3) uint8
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise UserError(f"cannot decode {path} ({e}): remove or replace the file") from e


def decode_images(paths: list[Path]) -> torch.Tensor:
    """Decode image files into one (N, 3, H, W) uint8 tensor; every image must have the same size."""
    with ThreadPoolExecutor(max_workers=4) as pool:  # Pillow releases the GIL while decoding
        arrays = list(pool.map(_decode, paths))
    first = arrays[0].shape
    for path, a in zip(paths, arrays, strict=True):
        if a.shape != first:
            raise UserError(
                f"{path} is {a.shape[1]}x{a.shape[0]}, others are {first[1]}x{first[0]}: all images must have one size"
            )
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def load_image_folder(root: Path, split: str) -> ImageSet:
    paths, labels, classes = scan_image_folder(root / split)
    return ImageSet(decode_images(paths), torch.tensor(labels), classes)


def load_torchvision_cifar10(root: Path, train: bool, download: bool) -> ImageSet:
    """CIFAR-10 through torchvision's own loader (the pickled batches; downloads when asked)."""
    from torchvision.datasets import CIFAR10

    try:
        ds = CIFAR10(str(root), train=train, download=download)
    except (RuntimeError, OSError) as e:  # not found, or no internet for --download
        raise UserError(
            f"cannot load CIFAR-10 from {root} ({e}); pass --data DIR with train/ and test/ "
            "image folders, or --download on a machine with internet"
        ) from e
    images = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()  # (N, 32, 32, 3) -> (N, 3, 32, 32)
    return ImageSet(images, torch.tensor(ds.targets), tuple(ds.classes))


def load_splits(cfg: TrainConfig) -> tuple[ImageSet, ImageSet]:
    """(train, test) image sets from --data / --download."""
    root = Path(cfg.data or "data")
    if (root / "train").is_dir() or (root / "test").is_dir():
        train, test = load_image_folder(root, "train"), load_image_folder(root, "test")
        if train.classes != test.classes:
            extra = sorted(set(train.classes) ^ set(test.classes))
            raise UserError(f"train/ and test/ under {root} have different class folders ({', '.join(extra)})")
        return train, test
    if cfg.download or (root / "cifar-10-batches-py").is_dir():
        return (load_torchvision_cifar10(root, True, cfg.download), load_torchvision_cifar10(root, False, cfg.download))
    raise UserError(
        f"no data at {root}: expected {root}/train/<class>/* and {root}/test/<class>/*, "
        "or a torchvision CIFAR-10 root (use --download to fetch it)"
    )


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


def train_transform(cfg: TrainConfig) -> v2.Transform:
    """Per-sample training augmentation (the architecture's own, plus the recipe's extras) on uint8 (3, H, W)."""
    spec = get_spec(cfg.arch)
    extras = [v2.RandomRotation(cfg.rotation)] if cfg.rotation else []
    erase = [v2.RandomErasing(p=1.0, scale=_square(cfg.cutout, cfg.image_size), ratio=(1.0, 1.0))] if cfg.cutout else []
    return v2.Compose(
        [
            *spec.augment(cfg.image_size),
            *extras,
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(spec.mean, spec.std),
            *erase,
        ]
    )


def _square(side: int, image_size: int) -> tuple[float, float]:
    area = min(side / image_size, 1.0) ** 2
    return area, area


def eval_transform(arch: str, image_size: int) -> v2.Transform:
    """Deterministic eval preprocessing: resize when the size differs, scale to [0, 1], normalise."""
    spec = get_spec(arch)
    return v2.Compose(
        [*spec.resize(image_size), v2.ToDtype(torch.float32, scale=True), v2.Normalize(spec.mean, spec.std)]
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


def build_datasets(cfg: TrainConfig) -> Datasets:
    """Decode once, split train into train/val, attach the recipe's transforms."""
    train, test = load_splits(cfg)
    train_idx, val_idx = stratified_split(train.labels, cfg.val_size, cfg.split_seed)
    ev = eval_transform(cfg.arch, cfg.image_size)
    val = None
    if len(val_idx):
        val = TensorImageDataset(train.images[val_idx], train.labels[val_idx], ev)
    return Datasets(
        train=TensorImageDataset(train.images[train_idx], train.labels[train_idx], train_transform(cfg)),
        val=val,
        test=TensorImageDataset(test.images, test.labels, ev),
        classes=train.classes,
    )
