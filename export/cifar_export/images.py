"""Real images for parity, calibration and accuracy, preprocessed exactly as cifar-train evaluates."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from cifar_export.errors import ExportError
from cifar_runtime.metadata import ModelInfo
from cifar_train.data import decode_images, eval_transform, scan_image_folder
from cifar_train.errors import UserError

# The committed fixture (real CIFAR-10 JPEGs): the default, so every check runs on real pixels.
FIXTURE = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "cifar10"
PREPROCESS_CHUNK = 256  # images per eval-transform call; bounds memory at 224x224


@dataclass(frozen=True)
class Images:
    inputs: np.ndarray  # (N, 3, H, W) float32, normalised: what the network takes
    labels: np.ndarray  # (N,) int64, indices into classes
    classes: tuple[str, ...]
    folder: Path


def split_folder(data: str | Path, split: str) -> Path:
    """`data/split` when `data` is an ImageFolder root (train/, test/), else `data` itself as the split."""
    root = Path(data) if data else FIXTURE
    if not root.is_dir():
        hint = "" if data else " (the fixture ships with the repository; pass --data DIR outside it)"
        raise ExportError(f"image folder {root} does not exist{hint}")
    return root / split if (root / split).is_dir() else root


def load_images(data: str | Path, split: str, info: ModelInfo, limit: int = 0, seed: int = 0) -> Images:
    """Decode a split, keep `limit` images (a seeded shuffle, so all classes show up; 0 = all), preprocess."""
    folder = split_folder(data, split)
    try:
        paths, labels, classes = scan_image_folder(folder)
        order = torch.randperm(len(paths), generator=torch.Generator().manual_seed(seed))
        if limit:
            order = order[:limit]  # pick before decoding: 50k training JPEGs for 500 calibration images is waste
        raw = decode_images([paths[i] for i in order])  # (N, 3, h, w) uint8
    except UserError as e:
        raise ExportError(str(e)) from e
    if classes != info.classes:
        raise ExportError(
            f"{folder} has classes {list(classes)} but the model predicts {list(info.classes)}: "
            "pass --data with the model's class folders"
        )
    transform = eval_transform(info.arch, info.input_size[0])
    inputs = torch.cat([transform(chunk) for chunk in raw.split(PREPROCESS_CHUNK)])
    if tuple(inputs.shape[2:]) != info.input_size:
        raise ExportError(
            f"images in {folder} preprocess to {tuple(inputs.shape[2:])}, the model takes {info.input_size}"
        )
    return Images(inputs.numpy(), np.asarray(labels)[order.numpy()], classes, folder)
