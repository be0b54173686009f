"""Any image a folder holds -> the float32 NCHW batch a model takes; Pillow and numpy only, no torch.

Matches the training eval transform `Resize(input_size, BILINEAR, antialias=True) -> ToTensor() ->
Normalize(mean, std)` on an RGB PIL image: the same Pillow resize, then the same float32 arithmetic.
Choices a training set never has to make, made here once:
- transparency (RGBA, LA, PA, P with a transparent colour) is composited on white, as a viewer shows it;
- 16-bit (I;16*) and 32-bit integer (I) images are read as 0..65535 and scaled to 0..255;
- float (F) images are read as 0..1 when their maximum is <= 1, else as 0..255; NaN counts as 0;
- every other mode (L, 1, P, CMYK, YCbCr, ...) goes through Pillow's own RGB conversion;
- animated images give their first frame; EXIF orientation is applied; the resize squashes to (H, W)
  without cropping, as `Resize((H, W))` does;
- a JPEG much larger than (H, W) is decoded at reduced scale first, unless asked to be exact (see
  `cifar_runtime.decode`, which also holds the limits on what a file may declare).
"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image

from cifar_runtime.decode import DEFAULT_DECODE, DecodeBudget, DecodeConfig, decode_file, load_image, to_rgb, upright
from cifar_runtime.errors import ModelError, UsageError
from cifar_runtime.metadata import LAYOUTS, ModelInfo

__all__ = [
    "INTERPOLATIONS",
    "ImageLike",
    "check_supported",
    "load_image",
    "model_input",
    "normalize_batch",
    "pixels",
    "read_pixels",
    "resize",
    "to_rgb",
]

INTERPOLATIONS = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
}
ImageLike = Image.Image | np.ndarray


def resize(img: Image.Image, size: tuple[int, int], interpolation: str = "bilinear") -> Image.Image:
    """Resize to size=(H, W) with Pillow (antialiased when shrinking); unchanged when already that size."""
    height, width = size
    if img.size == (width, height):
        return img
    return img.resize((width, height), INTERPOLATIONS[interpolation])


def normalize_batch(pixels: np.ndarray, info: ModelInfo) -> np.ndarray:
    """uint8 (N, H, W, 3) -> float32 (N, 3, H, W): x / 255, then (x - mean) / std, in float32."""
    x = pixels.astype(np.float32)  # (N, H, W, 3); in place from here: a batch holds two float copies, not four
    x /= np.float32(255)  # in [0, 1]
    x -= np.asarray(info.mean, np.float32)
    x /= np.asarray(info.std, np.float32)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))  # (N, 3, H, W)


def model_input(pixels: np.ndarray, info: ModelInfo) -> np.ndarray:
    """uint8 (N, H, W, 3) resized pixels -> the batch the model takes: normalised float32 NCHW, or the pixels
    themselves for a model that preprocesses in its graph (layout NHWC)."""
    if not isinstance(pixels, np.ndarray) or pixels.dtype != np.uint8:
        kind = pixels.dtype if isinstance(pixels, np.ndarray) else type(pixels).__name__
        raise UsageError(
            f"model_input takes uint8 (N, H, W, 3) pixels in 0..255, got {kind}: for floats in [0, 1] "
            "pass (x * 255).round().astype(np.uint8)"
        )
    if info.layout == "NHWC":
        return np.ascontiguousarray(pixels, dtype=np.uint8)
    return normalize_batch(pixels, info)


def pixels(image: ImageLike, info: ModelInfo) -> np.ndarray:
    """One PIL image or uint8 HWC RGB array -> uint8 (H, W, 3) RGB at the model's input size."""
    if isinstance(image, np.ndarray):
        rgb = _check_array(image)
        if rgb.shape[:2] == info.input_size:
            return rgb
        return _resized(Image.fromarray(rgb), info)
    if isinstance(image, Image.Image):  # upright is idempotent: it drops the tag it applied
        return _resized(to_rgb(upright(image)), info)
    raise UsageError(f"expected a path, a PIL image or a uint8 HxWx3 array, got {type(image).__name__}")


def read_pixels(
    path: str | os.PathLike[str],
    info: ModelInfo,
    decode: DecodeConfig = DEFAULT_DECODE,
    budget: DecodeBudget | None = None,
) -> np.ndarray:
    """Decode one image file and resize it to the model's input: uint8 (H, W, 3); ImageError when unreadable."""
    return decode_file(path, lambda rgb: _resized(rgb, info), decode, info.input_size, budget)


def check_supported(info: ModelInfo, source: str) -> None:
    """ModelError when the model asks for an input layout or a resize this runtime does not implement."""
    if info.layout not in LAYOUTS:
        raise ModelError(
            f"{source} takes layout {info.layout!r}; this runtime feeds {' or '.join(LAYOUTS)}: "
            "upgrade cifar-runtime or re-export it"
        )
    if info.interpolation not in INTERPOLATIONS:
        raise ModelError(
            f"{source} asks for interpolation {info.interpolation!r}; this runtime knows "
            f"{', '.join(INTERPOLATIONS)}: upgrade cifar-runtime or re-export the model"
        )


def _check_array(a: np.ndarray) -> np.ndarray:
    if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3:
        raise UsageError(f"expected a uint8 HxWx3 RGB array, got {a.dtype} with shape {a.shape}")
    return a


def _resized(rgb: Image.Image, info: ModelInfo) -> np.ndarray:
    """uint8 (H, W, 3) at the model's input size; a copy, so nothing big stays referenced."""
    return np.asarray(resize(rgb, info.input_size, info.interpolation))
