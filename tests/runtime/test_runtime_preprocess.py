"""Preprocessing: decode, mode conversion, resize and normalisation on real and awkward images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from runtime_files import TINY, bad_images, batch_of, one_input, png_header_only, unusual_images

from cifar_runtime import Classifier, ImageError, ModelInfo, UsageError
from cifar_runtime.preprocess import load_image, model_input, resize, to_rgb

INFO = ModelInfo(
    arch="test",
    classes=tuple("abcdefghij"),
    input_size=(32, 32),
    mean=(0.4914, 0.4822, 0.4465),
    std=(0.2470, 0.2435, 0.2616),
)


def test_real_jpegs_match_plain_numpy(test_images: list[Path]) -> None:
    """32x32 fixture images: no resize, and exactly x/255 then (x - mean)/std in float32."""
    batch = batch_of([load_image(p) for p in test_images[:40]], INFO)
    assert batch.shape == (40, 3, 32, 32) and batch.dtype == np.float32 and batch.flags.c_contiguous
    for x, path in zip(batch, test_images, strict=False):
        with Image.open(path) as img:
            rgb = np.asarray(img.convert("RGB"), np.float32) / np.float32(255)  # (H, W, 3)
        expected = ((rgb - np.float32(INFO.mean)) / np.float32(INFO.std)).transpose(2, 0, 1)
        np.testing.assert_array_equal(x, expected)


def test_array_and_pil_inputs_agree(photo: Image.Image) -> None:
    rgb = np.asarray(photo)
    np.testing.assert_array_equal(one_input(rgb, INFO), one_input(photo, INFO))
    small = rgb[::2, ::2]  # (16, 16, 3): needs the resize path
    np.testing.assert_array_equal(one_input(small, INFO), one_input(Image.fromarray(small), INFO))


@pytest.mark.parametrize(
    "bad",
    [np.zeros((32, 32, 3), np.float32), np.zeros((32, 32), np.uint8), np.zeros((1, 32, 32, 3), np.uint8)],
)
def test_arrays_must_be_uint8_hwc_rgb(bad: np.ndarray) -> None:
    with pytest.raises(UsageError, match="uint8 HxWx3"):
        one_input(bad, INFO)


def test_resize_is_pillow_bilinear_antialiased_and_skipped_at_size(photo: Image.Image) -> None:
    assert resize(photo, (32, 32)) is photo
    big = photo.resize((640, 480), Image.Resampling.NEAREST)  # blocky: aliasing would show
    small = np.asarray(resize(big, (32, 32)), np.float64)
    np.testing.assert_array_equal(small, np.asarray(big.resize((32, 32), Image.Resampling.BILINEAR)))
    # an antialiased shrink averages each 20x15 block; plain bilinear sampling would pick single pixels
    block_means = np.asarray(big, np.float64).reshape(32, 15, 32, 20, 3).mean(axis=(1, 3))
    assert np.abs(small - block_means).mean() < 4
    assert resize(photo, (24, 40)).size == (40, 24)  # (H, W) in, PIL's (W, H) out


def test_normalize_values() -> None:
    info = ModelInfo("t", ("a",), (1, 2), mean=(0.5, 0.5, 0.5), std=(0.25, 0.5, 1.0))
    rgb = np.array([[[0, 255, 51], [255, 0, 102]]], np.uint8)  # (1, 2, 3)
    x = model_input(rgb[None], info)[0]  # (3, 1, 2)
    np.testing.assert_allclose(x[:, 0, 0], [-2.0, 1.0, -0.3], rtol=1e-6)
    np.testing.assert_allclose(x[:, 0, 1], [2.0, -1.0, -0.1], rtol=1e-6)


def test_transparency_is_composited_on_white() -> None:
    clear = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    assert np.all(np.asarray(to_rgb(clear)) == 255)
    half = Image.new("LA", (4, 4), (0, 128))
    assert np.all(np.abs(np.asarray(to_rgb(half)).astype(int) - 127) <= 1)
    paletted = Image.new("P", (4, 4), 0)
    paletted.info["transparency"] = 0
    assert np.all(np.asarray(to_rgb(paletted)) == 255)


def test_high_bit_depth_is_scaled_not_clipped() -> None:
    grey16 = Image.fromarray(np.array([[0, 257 * 200, 65535]], np.uint16))
    assert grey16.mode == "I;16"
    np.testing.assert_array_equal(np.asarray(to_rgb(grey16))[0, :, 0], [0, 200, 255])
    as_int = Image.fromarray(np.array([[0, 257 * 200, 65535]], np.int32))
    assert as_int.mode == "I"
    np.testing.assert_array_equal(np.asarray(to_rgb(as_int))[0, :, 0], [0, 200, 255])
    unit = Image.fromarray(np.array([[0.0, 0.5, 1.0, np.nan]], np.float32))
    np.testing.assert_array_equal(np.asarray(to_rgb(unit))[0, :, 0], [0, 128, 255, 0])
    byte_range = Image.fromarray(np.array([[0.0, 100.0, 300.0]], np.float32))
    np.testing.assert_array_equal(np.asarray(to_rgb(byte_range))[0, :, 0], [0, 100, 255])


def test_unusual_files_decode_to_rgb(tmp_path: Path, photo: Image.Image) -> None:
    for name, data in unusual_images(photo).items():
        (tmp_path / name).write_bytes(data)
        img = load_image(tmp_path / name)
        assert img.mode == "RGB", name
        assert one_input(img, INFO).shape == (3, 32, 32), name
    assert load_image(tmp_path / "rotated_exif.jpg").size == (32, 48)  # EXIF orientation 6 applied
    first = np.asarray(load_image(tmp_path / "animated.gif"), np.int16)
    assert np.abs(first - np.asarray(photo, np.int16)).mean() < 12  # frame 0, not the flipped frame 1


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # Pillow's, before our refusal
@pytest.mark.parametrize("name", list(bad_images(b"\xff\xd8" * 100)))
def test_bad_files_raise_one_line_image_errors(tmp_path: Path, test_images: list[Path], name: str) -> None:
    path = tmp_path / name
    path.write_bytes(bad_images(test_images[0].read_bytes())[name])
    with pytest.raises(ImageError) as caught:
        load_image(path)
    assert "\n" not in str(caught.value) and str(caught.value)


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="No such file"):
        load_image(tmp_path / "absent.jpg")
    with pytest.raises(ImageError, match="directory"):
        load_image(tmp_path)


def test_pixel_guard_stays_on_when_pillow_guard_is_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(png_header_only(10_000, 10_000))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    with pytest.raises(ImageError, match="larger than the pixel limit"):
        load_image(path)


def test_classifier_predicts_every_unusual_image(tmp_path: Path, photo: Image.Image) -> None:
    classifier = Classifier(TINY, device="cpu")
    paths = []
    for name, data in unusual_images(photo).items():
        paths.append(tmp_path / name)
        paths[-1].write_bytes(data)
    predictions = classifier.predict(paths, top_k=3)
    assert len(predictions) == len(paths)
    assert all(0 <= p.confidence <= 1 and len(p.top_k) == 3 for p in predictions)
