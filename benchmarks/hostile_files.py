"""Image files the benchmark (and the tests) make: hostile headers, maximal images, large real-looking photos.

- `hostile_headers`: files of a few hundred bytes whose headers declare huge dimensions, in every format a folder
  holds; each must cost nothing and give one error row.
- `maximal_images`: real images right at the pixel limit, in the modes that cost the most to decode; each is
  decoded in full, so together they are the worst case the limit allows.
- `upscaled_photos`: CIFAR test images enlarged to 512-1024 px and saved as camera-like JPEGs, for measuring
  how often the reduced-scale JPEG decode agrees with the exact one.
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

# Pixels per side declared by hostile headers. 12000^2 = 144 Mpx (~0.6 GB as RGBA) sits between Pillow's warning
# and error limits, so only the runtime's own limit stands in its way; 50000^2 = 2.5 Gpx also trips Pillow's.
BIG = 12_000
HUGE = 50_000


def _save(img: Image.Image, fmt: str, **params: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **params)
    return buf.getvalue()


def png_header(width: int, height: int) -> bytes:
    """A PNG declaring width x height 8-bit RGBA pixels whose data is one empty row."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)  # 8 bits, RGBA
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0")) + chunk(b"IEND", b"")


def jpeg_header(width: int, height: int, progressive: bool = False) -> bytes:
    """A small real JPEG whose frame header (SOF) is rewritten to declare width x height (each < 65536)."""
    data = bytearray(_save(Image.new("RGB", (16, 16), (90, 140, 200)), "JPEG", progressive=progressive))
    sof = data.find(b"\xff\xc2" if progressive else b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, height, width)
    return bytes(data)


def gif_header(width: int, height: int) -> bytes:
    """A small GIF whose screen and first image descriptor declare width x height (each < 65536)."""
    data = bytearray(_save(Image.new("P", (16, 16), 3), "GIF"))
    struct.pack_into("<HH", data, 6, width, height)  # logical screen
    image = data.find(b"\x2c")  # image descriptor: ',' left top width height
    struct.pack_into("<HH", data, image + 5, width, height)
    return bytes(data)


def bmp_header(width: int, height: int) -> bytes:
    """A small 24-bit BMP whose info header declares width x height."""
    data = bytearray(_save(Image.new("RGB", (16, 16), (10, 20, 30)), "BMP"))
    struct.pack_into("<ii", data, 18, width, height)
    return bytes(data)


def tiff_header(width: int, height: int) -> bytes:
    """An uncompressed 8-bit RGB TIFF declaring width x height, holding 16 bytes of pixel data."""
    entries = [  # (tag, type, count, value): type 3 = SHORT, 4 = LONG
        (256, 4, 1, width),
        (257, 4, 1, height),
        (258, 3, 1, 8),
        (259, 3, 1, 1),  # no compression
        (262, 3, 1, 2),  # RGB
        (273, 4, 1, 8),  # the strip starts right after the 8-byte header
        (277, 3, 1, 3),
        (278, 4, 1, height),
        (279, 4, 1, 16),
    ]
    ifd = struct.pack("<H", len(entries))
    for tag, kind, count, value in entries:
        ifd += struct.pack("<HHI", tag, kind, count) + struct.pack(
            "<HH" if kind == 3 else "<I", *((value, 0) if kind == 3 else (value,))
        )
    return b"II*\x00" + struct.pack("<I", 8 + 16) + bytes(16) + ifd + struct.pack("<I", 0)


def webp_header(width: int, height: int) -> bytes:
    """A small lossless WebP whose extended header (VP8X) declares a width x height canvas (each <= 16384)."""
    frame = _save(Image.new("RGB", (16, 16), (200, 100, 50)), "WEBP", lossless=True)
    vp8l = frame[12:]  # the VP8L chunk after "RIFF....WEBP"
    vp8x = b"VP8X" + struct.pack("<I", 10) + bytes(4) + (width - 1).to_bytes(3, "little")
    vp8x += (height - 1).to_bytes(3, "little")
    body = b"WEBP" + vp8x + vp8l
    return b"RIFF" + struct.pack("<I", len(body)) + body


def hostile_headers(max_pixels: int) -> dict[str, bytes]:
    """Tiny files that declare far more than `max_pixels` (refused unread), and some that declare just under it
    (decoded until their data runs out): one error row each."""
    side = int(max_pixels**0.5)  # a square just under the limit
    return {
        "png_big.png": png_header(BIG, BIG),
        # a baseline JPEG is decoded at 1/8 scale: what counts is 1/64 of its declared size, so its bomb is HUGE
        "jpeg_big.jpg": jpeg_header(HUGE, HUGE),
        "jpeg_progressive_big.jpg": jpeg_header(BIG, BIG, progressive=True),
        "gif_big.gif": gif_header(BIG, BIG),
        "bmp_big.bmp": bmp_header(BIG, BIG),
        "tiff_big.tif": tiff_header(BIG, BIG),
        "webp_big.webp": webp_header(BIG, BIG),
        "png_huge.png": png_header(HUGE, HUGE),
        f"png_{side}x{side}_under_limit.png": png_header(side, side),
        f"jpeg_progressive_{side}x{side}_under_limit.jpg": jpeg_header(side, side, progressive=True),
        f"bmp_{side}x{side}_under_limit.bmp": bmp_header(side, side),
        f"tiff_{side}x{side}_under_limit.tif": tiff_header(side, side),
    }


def maximal_images(max_pixels: int, seed: int = 0) -> dict[str, bytes]:
    """Real images of just under `max_pixels`, in the costliest modes to decode: each decodes completely."""
    side = int(max_pixels**0.5)
    rng = np.random.default_rng(seed)
    # A smooth gradient plus a little noise: compresses like a photo, not like a flat colour.
    ramp = np.linspace(0, 255, side, dtype=np.float32)
    grey = (ramp[None, :] * 0.5 + ramp[:, None] * 0.5).astype(np.uint8)
    rgb = Image.fromarray(np.stack([grey, grey[::-1], grey.T], axis=2))
    rgba = rgb.convert("RGBA")
    rgba.putalpha(Image.fromarray(rng.integers(0, 256, (side, side), dtype=np.uint8)))
    grey16 = Image.fromarray(grey.astype(np.uint16) * 257)
    float_image = Image.fromarray(grey.astype(np.float32) / 255)
    return {
        "max_rgba.png": _save(rgba, "PNG", compress_level=1),
        "max_rgb.webp": _save(rgb, "WEBP", quality=50),
        "max_grey16.png": _save(grey16, "PNG", compress_level=1),
        "max_float.tif": _save(float_image, "TIFF"),
        "max_progressive.jpg": _save(rgb, "JPEG", quality=85, progressive=True),
        "max_cmyk.jpg": _save(rgb.convert("CMYK"), "JPEG", quality=85),
    }


def upscaled_photos(sources: list[Path], out: Path, seed: int = 0) -> list[Path]:
    """Each source image enlarged to a random 512-1024 px side (bicubic, a little sensor noise), saved as a
    quality-85 JPEG with 4:2:0 chroma like a camera's, under out/<class>/ (the source's folder name)."""
    rng = np.random.default_rng(seed)
    written = []
    for i, src in enumerate(sources):
        side = int(rng.integers(512, 1025))
        with Image.open(src) as img:
            big = img.convert("RGB").resize((side, side), Image.Resampling.BICUBIC)
        noisy = np.asarray(big, np.int16) + rng.normal(0, 3, (side, side, 3)).astype(np.int16)
        path = out / src.parent.name / f"{i:05d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).save(path, quality=85, subsampling="4:2:0")
        written.append(path)
    return written
