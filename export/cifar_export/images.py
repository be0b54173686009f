"""Real images for parity, calibration and accuracy, preprocessed as cifar-train evaluates (resized to the model's
input as the runtime resizes them).

The default is the model's own data: for a CIFAR-10 model, the 500 CIFAR-10 JPEGs shipped inside this package
(samples/cifar10: train/ 20 per class, test/ 30 per class), so every check runs on real pixels after any install;
for any other, the folder its run was trained on (recorded in the file's metadata), or --data.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from cifar_export.errors import ExportError
from cifar_runtime import ModelInfo
from cifar_train import decode_readable, eval_transform, scan_image_folder, split_dir

SAMPLES = Path(__file__).resolve().parent / "samples" / "cifar10"
PREPROCESS_CHUNK = 256  # images per eval-transform call; bounds memory at 224x224


@dataclass(frozen=True)
class Images:
    inputs: np.ndarray  # (N, 3, H, W) float32, normalised: what the network takes
    labels: np.ndarray  # (N,) int64, indices into classes
    classes: tuple[str, ...]
    folder: Path


CIFAR10 = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def default_data(info: ModelInfo) -> str:
    """Where a model's check images come from when --data is not given: the shipped CIFAR-10 samples for a CIFAR-10
    model, else the data folder its run recorded; ExportError when there is none."""
    if info.classes == CIFAR10:
        return ""
    try:
        source = (info.json_extra("dataset") or {}).get("source", "")  # type: ignore[union-attr]
    except ValueError:
        source = ""
    if source and Path(source).is_dir():
        return str(source)
    where = f" (its run read {source}, which is not here)" if source else ""
    raise ExportError(
        f"this model's classes are not CIFAR-10's and no images of them were found{where}: pass --data "
        "with its train/ and test/ folders"
    )


def split_folder(data: str | Path, split: str) -> Path:
    """`data/split` when `data` is an ImageFolder root (train/, test/ or val/), else `data` itself as the split."""
    root = Path(data) if data else SAMPLES
    if not root.is_dir():
        raise ExportError(f"image folder {root} does not exist")
    folder = split_dir(root, split)  # test/, or val/ where a folder has no test/ (as training reads it)
    return folder if folder.is_dir() else root


def labelled_files(data: str | Path, split: str, classes: tuple[str, ...]) -> tuple[Path, list[Path], list[int]]:
    """(folder, files, label indices into `classes`) of one split; every class folder must be one of `classes`."""
    folder = split_folder(data, split)
    paths, labels, found = scan_image_folder(folder)
    unknown = [c for c in found if c not in classes]
    if unknown:
        raise ExportError(
            f"{folder} has class folders the model does not know ({', '.join(unknown[:5])}); it "
            f"predicts {', '.join(classes)}: pass --data with the model's class folders"
        )
    return folder, paths, [classes.index(found[i]) for i in labels]


def load_images(data: str | Path, split: str, info: ModelInfo, limit: int = 0, seed: int = 0) -> Images:
    """Decode a split (`data` "": the model's own, see default_data), keep `limit` images (a seeded shuffle, so all
    classes show up; 0 = all), preprocess."""
    data = data or default_data(info)
    if limit < 0:
        raise ExportError(f"--limit {limit} must be 0 (all images) or a positive count")
    folder, paths, labels = labelled_files(data, split, info.classes)
    order = torch.randperm(len(paths), generator=torch.Generator().manual_seed(seed))
    if limit:
        order = order[:limit]  # pick before decoding: 50k training JPEGs for 500 calibration images is waste
    chosen = [paths[i] for i in order]
    raw, kept, skipped = decode_readable(chosen, info.input_size[0])  # (N, 3, H, W) uint8, at the input size
    if skipped:  # as training does: one unreadable file among the check images does not stop the check
        path, why = skipped[0]
        print(
            f"cifar-export: left out {len(skipped)} file(s) of {folder} that cannot be read (first: {path}: {why})",
            file=sys.stderr,
        )
    order = order[kept]
    transform = eval_transform(info.input_size[0], info.mean, info.std)
    inputs = torch.cat([transform(chunk) for chunk in raw.split(PREPROCESS_CHUNK)])
    if tuple(inputs.shape[2:]) != info.input_size:
        raise ExportError(
            f"images in {folder} preprocess to {tuple(inputs.shape[2:])}, the model takes {info.input_size}"
        )
    return Images(inputs.numpy(), np.asarray(labels)[order.numpy()], info.classes, folder)
