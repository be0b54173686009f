"""Files the runtime tests share: paths of the tiny ONNX models and generators of awkward image files.

A plain module (not conftest) so tests can import it by a name no other test folder uses.
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

MODELS = Path(__file__).resolve().parents[1] / "fixtures" / "models"
TINY = MODELS / "tiny_cnn.onnx"  # dynamic batch, CIFAR-10 metadata, mean = std = 0.5
TINY_BATCH3 = MODELS / "tiny_cnn_batch3.onnx"  # same weights, static batch of 3
TINY_NOMETA = MODELS / "tiny_cnn_nometa.onnx"  # same graph, no metadata_props
WEIGHTS = MODELS / "tiny_cnn_weights.npz"
# The run whose model the package bundles (as cifar_runtime/models/<BUNDLED_NAME>, its int8 sibling beside it): its
# checkpoint, record and measurements are committed there; the ONNX files are rebuilt from it (benchmarks/ship.sh).
SHIPPED_RUN = Path(__file__).resolve().parents[2] / "artifacts" / "fast-wide-long"
# The run bundled as `--model small` (int8 only); its checkpoint is not committed, its record and reports are.
SMALL_RUN = Path(__file__).resolve().parents[2] / "artifacts" / "distill-small"


def png_header_only(width: int, height: int) -> bytes:
    """A PNG declaring width x height 1-bit pixels but holding one empty row: a decompression bomb header."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # bit depth 1, greyscale
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0")) + chunk(b"IEND", b"")


def _save(img: Image.Image, fmt: str, **params: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **params)
    return buf.getvalue()


def unusual_images(photo: Image.Image) -> dict[str, bytes]:
    """Valid images in every awkward form a folder holds: each must be classified, not rejected."""
    rgba = photo.convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize(photo.size))
    grey16 = Image.fromarray(np.asarray(photo.convert("L")).astype(np.uint16) * 257)  # mode I;16
    grey_f = Image.fromarray(np.asarray(photo.convert("L"), np.float32) / 255)  # mode F, in [0, 1]
    frames = [photo, photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    paletted = photo.convert("P", palette=Image.Palette.ADAPTIVE)
    return {
        "one_pixel.png": _save(Image.new("RGB", (1, 1), (200, 30, 30)), "PNG"),
        "huge 3000x2000.jpg": _save(photo.resize((3000, 2000)), "JPEG", quality=80),
        "rgba.png": _save(rgba, "PNG"),
        "la.png": _save(rgba.convert("LA"), "PNG"),
        "palette_transparent.gif": _save(paletted, "GIF", transparency=0),
        "animated.gif": _save(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100),
        "grey.png": _save(photo.convert("L"), "PNG"),
        "bilevel.png": _save(photo.convert("1"), "PNG"),
        "grey16.png": _save(grey16, "PNG"),
        "float.tiff": _save(grey_f, "TIFF"),
        "cmyk.jpg": _save(photo.convert("CMYK"), "JPEG"),
        "rotated_exif.jpg": _save(photo.resize((48, 32)), "JPEG", exif=exif),  # displays as 32 wide, 48 high
        "UPPER CASE.JPEG": _save(photo, "JPEG"),
        "naïve 日本語 name.webp": _save(photo, "WEBP"),
        "bitmap.bmp": _save(photo, "BMP"),
    }


def bad_images(photo_jpeg: bytes) -> dict[str, bytes]:
    """Files with image names that are not usable images: each must give one error row."""
    return {
        "zero_bytes.jpg": b"",
        "truncated.jpg": photo_jpeg[: len(photo_jpeg) // 2],
        "corrupt.png": b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4,
        "text.jpg": b"this is not an image, only named like one\n",
        "bomb_warn.png": png_header_only(12_000, 12_000),  # 144 Mpx: between Pillow's warn and error limits
        "bomb_error.png": png_header_only(20_000, 20_000),  # 400 Mpx: past Pillow's error limit
    }


# ONNX files are protobuf: ModelProto field 14 holds metadata_props, each a StringStringEntryProto (key = 1,
# value = 2). These few lines edit them without the onnx package, which the runtime tests must not need.
_METADATA_PROPS = 14


def _varint(data: bytes, i: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        byte = data[i]
        value |= (byte & 0x7F) << shift
        i, shift = i + 1, shift + 7
        if byte < 0x80:
            return value, i


def _fields(data: bytes) -> list[tuple[int, bytes, bytes]]:
    """Top-level (field number, raw bytes of the whole field, payload of a length-delimited field)."""
    fields, i = [], 0
    while i < len(data):
        start = i
        key, i = _varint(data, i)
        wire, payload = key & 7, b""
        if wire == 0:
            _, i = _varint(data, i)
        elif wire == 1:
            i += 8
        elif wire == 2:
            n, i = _varint(data, i)
            payload, i = data[i : i + n], i + n
        elif wire == 5:
            i += 4
        else:
            raise ValueError(f"unexpected protobuf wire type {wire}")
        fields.append((key >> 3, data[start:i], payload))
    return fields


def _field(number: int, payload: bytes) -> bytes:
    n, length = len(payload), b""
    while True:
        length += bytes([(n & 0x7F) | (0x80 if n > 0x7F else 0)])
        n >>= 7
        if not n:
            return bytes([number << 3 | 2]) + length + payload


def metadata_props(model: Path = TINY) -> dict[bytes, bytes]:
    """The metadata_props of an ONNX file, as raw bytes."""
    props = {}
    for number, _, payload in _fields(model.read_bytes()):
        if number == _METADATA_PROPS:
            entry = {n: value for n, _, value in _fields(payload)}
            props[entry.get(1, b"")] = entry.get(2, b"")
    return props


def with_metadata(changes: dict[str, str | bytes], model: Path = TINY) -> bytes:
    """The bytes of `model` with some metadata_props replaced (str values are UTF-8 encoded, bytes kept raw)."""
    props = metadata_props(model)
    props.update({k.encode(): v if isinstance(v, bytes) else v.encode() for k, v in changes.items()})
    kept = b"".join(raw for number, raw, _ in _fields(model.read_bytes()) if number != _METADATA_PROPS)
    return kept + b"".join(_field(_METADATA_PROPS, _field(1, k) + _field(2, v)) for k, v in props.items())


def one_input(image, info):  # noqa: ANN001, ANN201 (a test helper: a PIL image or array, a ModelInfo)
    """One image -> the float32 (3, H, W) row of the batch an NCHW model takes, through the runtime's own steps."""
    from cifar_runtime.preprocess import model_input, pixels

    return model_input(pixels(image, info)[None], info)[0]


def batch_of(images, info):  # noqa: ANN001, ANN201
    """Images -> the float32 (N, 3, H, W) batch an NCHW model takes."""
    return np.stack([one_input(image, info) for image in images])
