"""Image files -> upright 8-bit RGB, with the memory a decode may take bounded by design, whatever a file declares.

Everything below is decided from the file's header, before a pixel is decoded:
- an image that declares more than `max_pixels` pixels (default 4096 x 3072) is refused with an ImageError: it is
  never decoded, so a few-hundred-byte file declaring 60000 x 60000 costs nothing; for a baseline JPEG the size
  it will be decoded at (below) counts, so a 16 Mpx photo decoded at 1/8 scale is not refused;
- a JPEG much larger than the model input is decoded by libjpeg at 1/2, 1/4 or 1/8 scale (Pillow's `draft`),
  keeping each side at least DRAFT_FACTOR x the model's, unless `exact`; the pixels then differ slightly from a
  full decode (the bench measures the top-1 agreement), and memory and time drop by up to 64x;
- the images being decoded at once hold at most `max_pixels` pixels between them (a DecodeBudget shared by all
  threads), so the worst case is one maximal image, never one per thread. The costliest decode measured (WebP:
  Pillow's decoder keeps two RGBA canvases and a copy) takes under 16 bytes per pixel: about 200 MB at the
  default, on top of the process itself; every other mode takes at most 12.
A process that decodes many large images should also call `return_large_frees_to_os` once (the CLI does).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from cifar_runtime.errors import ImageError, UsageError, one_line

# 12.6 Mpx: a 12 Mpx phone photo (4032 x 3024) or a 4K frame fits; at most ~200 MB to decode (see above), so a
# process with the fast int8 model stays under 400 MB on any folder (4096 x 4096 measured 409 MB)
DEFAULT_MAX_PIXELS = 4096 * 3072
DRAFT_FACTOR = 4  # a JPEG is decoded reduced only while both sides stay >= 4x the model input's
MMAP_THRESHOLD = 1 << 20  # bytes: glibc serves bigger allocations by mmap, returned to the OS when freed
_M_MMAP_THRESHOLD = -3  # mallopt's parameter number, from glibc's malloc.h
STRIP_ROWS = 256  # rows converted at a time, so a mode conversion never holds a float64 copy of a whole image
WHITE = (255, 255, 255, 255)
_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N", "I")
_TRANSPARENT = ("RGBA", "RGBa", "LA", "La", "PA")
_OPEN_LOCK = threading.Lock()
T = TypeVar("T")


@dataclass(frozen=True)
class DecodeConfig:
    """How image files are decoded; the `cifar-infer` flags of the same names."""

    max_pixels: int = DEFAULT_MAX_PIXELS  # width x height a file may declare; bigger ones are refused unread
    exact: bool = False  # True: decode JPEGs at full size (slower, more memory), never at reduced scale

    def __post_init__(self) -> None:
        if self.max_pixels < 1:
            raise UsageError(f"max_pixels must be at least 1, got {self.max_pixels}")


DEFAULT_DECODE = DecodeConfig()


class DecodeBudget:
    """A weighted semaphore: images decoded at once hold at most `capacity` pixels; a bigger one waits its turn."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.in_use = 0  # pixels held by the decodes running now
        self.peak = 0  # the most pixels ever held at once (the tests read it)
        self._free = threading.Condition()

    @contextlib.contextmanager
    def hold(self, pixels: int) -> Iterator[None]:
        """Block until `pixels` fit (alone, an image may take the whole budget), hold them for the block."""
        pixels = min(pixels, self.capacity)
        with self._free:
            self._free.wait_for(lambda: self.in_use + pixels <= self.capacity)
            self.in_use += pixels
            self.peak = max(self.peak, self.in_use)
        try:
            yield
        finally:
            with self._free:
                self.in_use -= pixels
                self._free.notify_all()


def decode_file(
    path: str | os.PathLike[str],
    finish: Callable[[Image.Image], T],
    decode: DecodeConfig = DEFAULT_DECODE,
    size: tuple[int, int] | None = None,
    budget: DecodeBudget | None = None,
) -> T:
    """`finish(image)` of the file at `path` decoded to upright 8-bit RGB (first frame), all within the budget.

    `size` (H, W) is what `finish` will resize to: a JPEG much larger than it is decoded at reduced scale. The
    decoded pixels are released before the budget is, so the next large image never meets this one in memory.
    Raises ImageError with a one-line reason for anything that is not a readable image within the limits.
    """
    with _as_image_error(), _open(path) as img:
        width, height = img.size
        declared = width * height
        if size is not None and not decode.exact:
            side = DRAFT_FACTOR * max(size)  # square: an EXIF rotation may swap the sides later
            # JPEG (and MPO): the largest of 1/8, 1/4, 1/2 that keeps both sides >= side; other formats: no-op
            img.draft(None, (side, side))
        # What decoding will hold: the reduced size for a baseline JPEG, else the declared size (a progressive JPEG
        # keeps every DCT coefficient of the full image in memory, whatever the scale).
        cost = declared if img.info.get("progressive") else img.width * img.height
        if cost > decode.max_pixels:
            reduced = f"; decoded at reduced scale it would still be {cost}" if cost != declared else ""
            raise ImageError(
                f"larger than the pixel limit: it declares {width}x{height} = {declared} pixels{reduced}, over the "
                f"limit of {decode.max_pixels} (raise it with cifar-infer --max-pixels N, or "
                "DecodeConfig(max_pixels=N) in Python, to read it)"
            )
        with budget.hold(cost) if budget is not None else contextlib.nullcontext():
            out = None
            try:
                img.load()  # decode now, inside the error mapping: truncation and corrupt data surface here
                out = finish(to_rgb(upright(img)))  # the converted copies are freed as soon as `finish` returns
                return out
            finally:
                if out is not img:  # also on errors, whose traceback would keep the image alive past the budget
                    img.close()  # frees the decoded pixels now, not when the garbage collector gets to them


def load_image(
    path: str | os.PathLike[str], decode: DecodeConfig = DEFAULT_DECODE, size: tuple[int, int] | None = None
) -> Image.Image:
    """Decode an image file to upright 8-bit RGB (first frame); ImageError with a one-line reason."""
    return decode_file(path, _same, decode, size)


def _same(img: Image.Image) -> Image.Image:
    return img


@contextlib.contextmanager
def _as_image_error() -> Iterator[None]:
    try:
        yield
    except ImageError:
        raise
    except (FileNotFoundError, IsADirectoryError, PermissionError) as e:
        raise ImageError(e.strerror or type(e).__name__) from e
    except UnidentifiedImageError as e:
        raise ImageError("not an image file Pillow can read") from e
    except OSError as e:
        if e.errno is None:  # Pillow's own OSErrors (truncated data and the like) carry no errno
            raise ImageError(f"corrupt or truncated image (OSError: {one_line(e)})") from e
        raise ImageError(e.strerror or os.strerror(e.errno)) from e  # the file system's: a symlink loop, an I/O error
    except Image.DecompressionBombError as e:  # over Pillow's own hard limit, 2 x PIL.Image.MAX_IMAGE_PIXELS
        raise ImageError(f"larger than Pillow's own hard limit, which no flag raises: {one_line(e)}") from e
    except Exception as e:
        # Pillow's decoders raise many types on corrupt data (OSError, SyntaxError, ValueError,
        # struct.error, EOFError, ...); each of them means the same thing here.
        raise ImageError(f"corrupt or truncated image ({type(e).__name__}: {one_line(e)})") from e


def _open(path: str | os.PathLike[str]) -> Image.Image:
    """Image.open without Pillow's DecompressionBombWarning: `decoded` applies its own, lower limit next, and the
    warning would print beside the error row (or surprise a program using Classifier).

    Warning filters are process-wide before Python 3.14; the lock keeps decoding threads from restoring each
    other's filters, and only reading the header (not decoding) happens under it.
    """
    with _OPEN_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        return Image.open(path)


def upright(img: Image.Image) -> Image.Image:
    """Apply the EXIF orientation, as photo viewers do; the image itself when it has none to apply."""
    if img.getexif().get(ExifTags.Base.Orientation, 1) == 1:
        return img  # exif_transpose would copy it: a waste for large photos
    return ImageOps.exif_transpose(img)


def to_rgb(img: Image.Image) -> Image.Image:
    """Any Pillow mode as 8-bit RGB, by the rules in `cifar_runtime.preprocess`'s docstring."""
    if img.mode == "RGB":
        return img
    if img.mode in _SIXTEEN_BIT or img.mode == "F":
        return Image.fromarray(_to_uint8(img)).convert("RGB")
    if img.mode in _TRANSPARENT or (img.mode == "P" and "transparency" in img.info):
        return _on_white(img)
    return img.convert("RGB")


def _on_white(img: Image.Image) -> Image.Image:
    """Composite on white a strip at a time: the same pixels as one alpha_composite, without three full copies."""
    out = Image.new("RGB", img.size)
    for top in range(0, img.height, STRIP_ROWS):
        strip = img.crop((0, top, img.width, min(top + STRIP_ROWS, img.height))).convert("RGBA")
        out.paste(Image.alpha_composite(Image.new("RGBA", strip.size, WHITE), strip).convert("RGB"), (0, top))
    return out


def _to_uint8(img: Image.Image) -> np.ndarray:
    """High bit-depth greyscale pixels -> uint8 (H, W), by the rules in `cifar_runtime.preprocess`'s docstring."""
    a = np.asarray(img)  # (H, W) uint16, int32 or float32
    # Float images are read as 0..1 when their maximum is <= 1; NaN counts as 0 (np.fmax skips it).
    unit = img.mode == "F" and a.size and not np.fmax.reduce(a, axis=None, initial=-np.inf) > 1
    out = np.empty(a.shape, np.uint8)
    for top in range(0, a.shape[0], STRIP_ROWS):
        x = a[top : top + STRIP_ROWS].astype(np.float64)
        if img.mode == "F":
            x = np.nan_to_num(x, nan=0.0, posinf=255.0, neginf=0.0)
            x = x * 255 if unit else x
        else:
            x = x / 257  # 65535 -> 255 exactly
        out[top : top + STRIP_ROWS] = np.clip(np.rint(x), 0, 255)
    return out


def return_large_frees_to_os() -> None:
    """Make glibc allocate every block over MMAP_THRESHOLD with mmap, process-wide; elsewhere, do nothing.

    By default glibc raises that threshold to the largest block freed so far (up to 32 MB), so after one large
    image Pillow's 16 MB blocks come from per-thread heaps that keep them: measured, a folder of maximal images
    then peaked at 550-600 MB instead of 360 MB.
    """
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c")).mallopt
    except (OSError, AttributeError, TypeError):  # not glibc: macOS and musl have no mallopt, Windows no libc
        return
    mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)  # setting it also switches off the dynamic raise
