"""Any image a folder holds -> the float32 NCHW batch a model takes; Pillow and numpy only, no torch.

Matches the training eval transform `Resize(input_size, BILINEAR, antialias=True) -> ToTensor() ->
Normalize(mean, std)` on an RGB PIL image: the same Pillow resize, then the same float32 arithmetic.
Choices a training set never has to make, made here once:
- transparency (RGBA, LA, PA, P with a transparent colour) is composited on white, as a viewer shows it;
- 16-bit (I;16*) and 32-bit integer (I) images are read as 0..65535 and scaled to 0..255;
- float (F) images are read as 0..1 when their maximum is <= 1, else as 0..255; NaN counts as 0;
- every other mode (L, 1, P, CMYK, YCbCr, ...) goes through Pillow's own RGB conversion;
- animated images give their first frame; EXIF orientation is applied; the resize squashes to (H, W)
  without cropping, as `Resize((H, W))` does.
"""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Sequence

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from cifar_runtime.errors import ImageError, ModelError, UsageError, one_line
from cifar_runtime.metadata import ModelInfo

# Pillow's own default guard: 89.5 Mpx (~0.25 GiB as 8-bit RGB). Used when someone set
# Image.MAX_IMAGE_PIXELS = None, so the guard stays on; bigger files are refused as decompression bombs.
DEFAULT_MAX_PIXELS = 89_478_485
WHITE = (255, 255, 255, 255)
INTERPOLATIONS = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
}
_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N", "I")
_TRANSPARENT = ("RGBA", "RGBa", "LA", "La", "PA")

ImageLike = Image.Image | np.ndarray
_OPEN_LOCK = threading.Lock()


def load_image(path: str | os.PathLike[str]) -> Image.Image:
    """Decode an image file to upright 8-bit RGB (first frame); ImageError with a one-line reason."""
    try:
        with _open(path) as img:
            limit = Image.MAX_IMAGE_PIXELS or DEFAULT_MAX_PIXELS
            if img.width * img.height > limit:
                raise ImageError(_bomb_message(img.width, img.height, limit))
            img.load()  # decode now, inside the try: truncation and corrupt data surface here
            return to_rgb(upright(img))
    except ImageError:
        raise
    except (FileNotFoundError, IsADirectoryError, PermissionError) as e:
        raise ImageError(e.strerror or type(e).__name__) from e
    except UnidentifiedImageError as e:
        raise ImageError("not an image file Pillow can read") from e
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageError(f"refused as a possible decompression bomb: {one_line(e)}") from e
    except Exception as e:
        # Pillow's decoders raise many types on corrupt data (OSError, SyntaxError, ValueError,
        # struct.error, EOFError, ...); each of them means the same thing here.
        raise ImageError(f"corrupt or truncated image ({type(e).__name__}: {one_line(e)})") from e


def _open(path: str | os.PathLike[str]) -> Image.Image:
    """Image.open with Pillow's DecompressionBombWarning raised as an error: such an image is refused anyway, and
    the warning would print beside its error row (or surprise a program using Classifier).

    Warning filters are process-wide before Python 3.14; the lock keeps decoding threads from restoring each
    other's filters, and only reading the header (not decoding) happens under it.
    """
    with _OPEN_LOCK, warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        return Image.open(path)


def upright(img: Image.Image) -> Image.Image:
    """Apply the EXIF orientation, as photo viewers do; the image itself when it has none to apply."""
    if img.getexif().get(ExifTags.Base.Orientation, 1) == 1:
        return img  # exif_transpose would copy it: a waste for large photos
    return ImageOps.exif_transpose(img)


def to_rgb(img: Image.Image) -> Image.Image:
    """Any Pillow mode as 8-bit RGB, by the rules in this module's docstring."""
    if img.mode == "RGB":
        return img
    if img.mode in _SIXTEEN_BIT or img.mode == "F":
        return Image.fromarray(_to_uint8(np.asarray(img), img.mode)).convert("RGB")
    if img.mode in _TRANSPARENT or (img.mode == "P" and "transparency" in img.info):
        background = Image.new("RGBA", img.size, WHITE)
        return Image.alpha_composite(background, img.convert("RGBA")).convert("RGB")
    return img.convert("RGB")


def resize(img: Image.Image, size: tuple[int, int], interpolation: str = "bilinear") -> Image.Image:
    """Resize to size=(H, W) with Pillow (antialiased when shrinking); unchanged when already that size."""
    height, width = size
    if img.size == (width, height):
        return img
    return img.resize((width, height), INTERPOLATIONS[interpolation])


def normalize(rgb: np.ndarray, info: ModelInfo) -> np.ndarray:
    """uint8 (H, W, 3) -> float32 (3, H, W): x/255, then (x - mean)/std, float32 as ToTensor+Normalize."""
    x = rgb.astype(np.float32) / np.float32(255)  # (H, W, 3) in [0, 1]
    x = (x - np.asarray(info.mean, np.float32)) / np.asarray(info.std, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1))  # (3, H, W)


def prepare(image: ImageLike, info: ModelInfo) -> np.ndarray:
    """One PIL image or uint8 HWC RGB array -> the model's float32 (3, H, W) input."""
    if isinstance(image, np.ndarray):
        rgb = _check_array(image)
        if rgb.shape[:2] == info.input_size:
            return normalize(rgb, info)
        return _from_rgb(Image.fromarray(rgb), info)
    if isinstance(image, Image.Image):
        return _from_rgb(to_rgb(upright(image)), info)  # upright is idempotent: it drops the tag it applied
    raise UsageError(f"expected a path, a PIL image or a uint8 HxWx3 array, got {type(image).__name__}")


def preprocess(images: Sequence[ImageLike], info: ModelInfo) -> np.ndarray:
    """PIL images and/or uint8 HWC arrays -> float32 (N, 3, H, W), ready for the model."""
    if not images:
        return np.zeros((0, 3, *info.input_size), np.float32)
    return np.stack([prepare(image, info) for image in images])


def prepare_file(path: str | os.PathLike[str], info: ModelInfo) -> np.ndarray:
    """Decode and prepare one image file: float32 (3, H, W); ImageError when it cannot be read."""
    return _from_rgb(load_image(path), info)


def check_supported(info: ModelInfo, source: str) -> None:
    """ModelError when the model asks for an input layout or a resize this runtime does not implement."""
    if info.layout != "NCHW":
        raise ModelError(f"{source} takes layout {info.layout!r}; this runtime feeds NCHW: re-export it")
    if info.interpolation not in INTERPOLATIONS:
        raise ModelError(
            f"{source} asks for interpolation {info.interpolation!r}; this runtime knows "
            f"{', '.join(INTERPOLATIONS)}: upgrade cifar-runtime or re-export the model"
        )


def _from_rgb(rgb: Image.Image, info: ModelInfo) -> np.ndarray:
    return normalize(np.asarray(resize(rgb, info.input_size, info.interpolation)), info)


def _check_array(a: np.ndarray) -> np.ndarray:
    if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3:
        raise UsageError(f"expected a uint8 HxWx3 RGB array, got {a.dtype} with shape {a.shape}")
    return a


def _to_uint8(a: np.ndarray, mode: str) -> np.ndarray:
    """High bit-depth greyscale pixels -> uint8 (H, W), by the rules in this module's docstring."""
    x = a.astype(np.float64)
    if mode == "F":
        x = np.nan_to_num(x, nan=0.0, posinf=255.0, neginf=0.0)
        x = x * 255 if x.size and x.max() <= 1 else x
    else:
        x = x / 257  # 65535 -> 255 exactly
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def _bomb_message(width: int, height: int, limit: int) -> str:
    return (
        f"refused as a possible decompression bomb: {width}x{height} = {width * height} pixels "
        f"exceeds the limit of {limit}"
    )
