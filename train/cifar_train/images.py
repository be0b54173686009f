"""Read an image dataset once into uint8 tensors: an ImageFolder (train/<class>/*, test/<class>/* or val/) or
torchvision's CIFAR-10.

Images of any mode (grayscale, palette, RGB, with transparency) are decoded as the runtime decodes them
(cifar_runtime.decode: upright, RGB, transparency on white), and resized once, as the runtime resizes them, to
--image-size when their sizes differ from it or from each other. A file that cannot be read is left out and listed.
"""

from __future__ import annotations

import collections
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from cifar_runtime import ImageError
from cifar_runtime.decode import load_image
from cifar_runtime.inputs import IMAGE_SUFFIXES
from cifar_runtime.preprocess import resize
from cifar_train.config import TrainConfig
from cifar_train.errors import UserError
from cifar_train.models import get_spec


@dataclass(frozen=True)
class ImageSet:
    images: torch.Tensor  # (N, 3, H, W) uint8
    labels: torch.Tensor  # (N,) int64
    classes: tuple[str, ...]
    sizes: collections.Counter[str] = field(default_factory=collections.Counter)  # "WxH" in the files -> count
    modes: collections.Counter[str] = field(default_factory=collections.Counter)  # Pillow mode ("L", "P", ...) -> count
    skipped: tuple[tuple[Path, str], ...] = ()  # files that could not be read: (path, why), left out of the set


def scan_image_folder(folder: Path) -> tuple[list[Path], list[int], tuple[str, ...]]:
    """Files of an ImageFolder split: <folder>/<class>/<image>, classes sorted by name."""
    if not folder.is_dir():
        raise UserError(f"{folder} is not a folder: --data needs train/<class>/* and test/<class>/* (or val/)")
    # hidden folders (.ipynb_checkpoints, .git) are not classes
    classes = tuple(sorted(d.name for d in folder.iterdir() if d.is_dir() and not d.name.startswith(".")))
    if not classes:
        raise UserError(f"{folder} has no class folders: expected {folder}/<class>/<image files>")
    paths: list[Path] = []
    labels: list[int] = []
    for index, name in enumerate(classes):
        files = sorted(p for p in (folder / name).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise UserError(f"class folder {folder / name} holds no image files")
        paths += files
        labels += [index] * len(files)
    return paths, labels, classes


def _headers(paths: list[Path]) -> list[tuple[str, str]]:
    """("WxH", Pillow mode) of each file from its header, without decoding it; ("?", "?") for a header Pillow
    cannot read (that file's decode fails too, and says why)."""

    def header(path: Path) -> tuple[str, str]:
        try:
            with Image.open(path) as im:
                return f"{im.width}x{im.height}", im.mode
        except (OSError, ValueError, Image.DecompressionBombError):
            return "?", "?"

    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(header, paths))


def _try_decode(path: Path, size: int | None) -> np.ndarray | str:
    """(H, W, 3) uint8 RGB as the runtime decodes it, resized to size x size (bilinear, as the runtime) if given;
    or why the file cannot be decoded."""
    try:
        img = load_image(path)
    except ImageError as e:
        return str(e)
    return np.asarray(resize(img, (size, size)) if size else img)


def _decode(path: Path, size: int | None) -> np.ndarray:
    """_try_decode's array; UserError naming the file when it cannot be decoded."""
    decoded = _try_decode(path, size)
    if isinstance(decoded, str):
        raise UserError(f"cannot decode {path} ({decoded}): remove or replace the file")
    return decoded


def decode_readable(
    paths: list[Path], size: int | None = None
) -> tuple[torch.Tensor, list[int], list[tuple[Path, str]]]:
    """decode_images for a folder a user made: a file that cannot be read is left out, so that one bad file among
    thousands does not stop a run (as Ultralytics and Keras skip them). Returns (images, the indices of `paths`
    they are, [(path, why) of every file left out]); UserError when none can be read."""
    with ThreadPoolExecutor(max_workers=4) as pool:  # Pillow releases the GIL while decoding
        arrays = list(pool.map(lambda p: _try_decode(p, size), paths))
    kept = [i for i, a in enumerate(arrays) if not isinstance(a, str)]
    skipped = [(p, a) for p, a in zip(paths, arrays, strict=True) if isinstance(a, str)]
    if not kept:
        raise UserError(f"none of the {len(paths)} image files can be read (first: {skipped[0][0]}: {skipped[0][1]})")
    return _stack([paths[i] for i in kept], [arrays[i] for i in kept]), kept, skipped  # type: ignore[misc]


def decode_images(paths: list[Path], size: int | None = None) -> torch.Tensor:
    """Decode image files into one (N, 3, H, W) uint8 tensor, each resized to size x size when `size` is given;
    without it every image must have the same size."""
    with ThreadPoolExecutor(max_workers=4) as pool:  # Pillow releases the GIL while decoding
        arrays = list(pool.map(lambda p: _decode(p, size), paths))
    return _stack(paths, arrays)


def _stack(paths: list[Path], arrays: list[np.ndarray]) -> torch.Tensor:
    first = arrays[0].shape
    for path, a in zip(paths, arrays, strict=True):
        if a.shape != first:
            raise UserError(
                f"{path} is {a.shape[1]}x{a.shape[0]}, others are {first[1]}x{first[0]}: all images must have one size"
            )
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def load_image_folder(root: Path, split: str, size: int | None = None) -> ImageSet:
    """One split of an ImageFolder; images resized to size x size when given."""
    paths, labels, classes = scan_image_folder(root / split)
    return _load(paths, labels, classes, _headers(paths), size)


def _load(
    paths: list[Path], labels: list[int], classes: tuple[str, ...], headers: list[tuple[str, str]], size: int | None
) -> ImageSet:
    """Decode a split (`headers`: _headers(paths)), leaving out (and listing in `skipped`) files that cannot be
    read; a class left without images is an error."""
    images, kept, skipped = decode_readable(paths, size)
    empty = set(range(len(classes))) - {labels[i] for i in kept}
    if empty:
        folder = paths[labels.index(min(empty))].parent
        raise UserError(f"class folder {folder}: none of its image files can be read (first: {skipped[0][1]})")
    return ImageSet(
        images,
        torch.tensor([labels[i] for i in kept]),
        classes,
        collections.Counter(headers[i][0] for i in kept),
        collections.Counter(headers[i][1] for i in kept),
        tuple(skipped),
    )


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


# The test split's folder, in the order looked for: a folder laid out for Ultralytics or timm (train/ and val/)
# is tested on its val/ (scored once, never selected on: validation is still held out of train/).
TEST_FOLDERS = ("test", "val", "valid", "validation")


def split_dir(root: Path, split: str) -> Path:
    """root/split; for "test", the first of TEST_FOLDERS that exists (root/test when none does)."""
    if split != "test":
        return root / split
    return next((root / name for name in TEST_FOLDERS if (root / name).is_dir()), root / "test")


def load_splits(cfg: TrainConfig) -> tuple[ImageSet, ImageSet]:
    """(train, test) image sets from --data / --download. Images are resized once, when decoded, to --image-size
    if their sizes differ from it or from each other, except for architectures that resize on the fly."""
    root = Path(cfg.data or "data")
    if (root / "train").is_dir() or split_dir(root, "test").is_dir():
        (train_paths, train_labels, classes), (test_paths, test_labels, test_classes) = (
            scan_image_folder(root / "train"),
            scan_image_folder(split_dir(root, "test")),
        )
        if classes != test_classes:
            extra = sorted(set(classes) ^ set(test_classes))
            raise UserError(f"train/ and test/ under {root} have different class folders ({', '.join(extra)})")
        if len(classes) < 2:
            raise UserError(f"{root} has one class folder ({classes[0]}): a classifier needs two or more")
        headers = _headers(train_paths + test_paths)  # read once: the sizes decide the target, then each split
        sizes = {size for size, _ in headers} - {"?"}
        spec, side = get_spec(cfg.arch), cfg.image_size
        keep = len(sizes) == 1 and (spec.resize_on_the_fly or sizes == {f"{side}x{side}"})
        target = None if keep else side
        n = len(train_paths)
        return (
            _load(train_paths, train_labels, classes, headers[:n], target),
            _load(test_paths, test_labels, classes, headers[n:], target),
        )
    if cfg.download or (root / "cifar-10-batches-py").is_dir():
        return (load_torchvision_cifar10(root, True, cfg.download), load_torchvision_cifar10(root, False, cfg.download))
    raise UserError(
        f"no data at {root}: expected {root}/train/<class>/* and {root}/test/<class>/*, "
        "or a torchvision CIFAR-10 root (use --download to fetch it)"
    )
