"""`cifar-export onnx --raw`: a file any ONNX Runtime binding can feed with decoded, resized uint8 RGB pixels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch.nn as nn
from typer.testing import CliRunner

from cifar_export.cli import app
from cifar_export.engines import pixels_of
from cifar_export.images import SAMPLES
from cifar_export.wrappers import RawInput
from cifar_runtime import Classifier
from cifar_runtime.errors import UsageError
from cifar_runtime.preprocess import read_pixels
from cifar_train.images import scan_image_folder


def test_the_raw_file_declares_its_contract_and_takes_pixels(cnn_raw: Path) -> None:
    session = ort.InferenceSession(str(cnn_raw), providers=["CPUExecutionProvider"])
    (inp,) = session.get_inputs()
    assert inp.type == "tensor(uint8)" and inp.shape[1:] == [32, 32, 3]
    assert [o.name for o in session.get_outputs()] == ["logits", "probabilities"]
    assert session.get_modelmeta().custom_metadata_map["layout"] == "NHWC"
    report = json.loads(cnn_raw.with_name(cnn_raw.name + ".parity.json").read_text())
    assert report["published"] and all(
        r["max_abs"] <= 1e-4 and r["top1_agreement"] == 100.0 for r in report["parity"]["rows"]
    )
    # What a C# or JavaScript caller does: pixels in, probabilities out, nothing else.
    paths = scan_image_folder(SAMPLES / "test")[0][:10]
    clf = Classifier(cnn_raw, device="cpu")
    pixels = np.stack([read_pixels(p, clf.info) for p in paths])  # (10, 32, 32, 3) uint8
    logits, probabilities = session.run(None, {inp.name: pixels})
    np.testing.assert_allclose(probabilities.sum(1), 1, atol=1e-5)
    expected = np.exp(logits - logits.max(1, keepdims=True))
    np.testing.assert_allclose(probabilities, expected / expected.sum(1, keepdims=True), atol=1e-6)


def test_cifar_infer_gets_the_float_files_labels_from_the_raw_file(cnn_raw: Path, cnn_exported: Path) -> None:
    paths = [str(p) for p in scan_image_folder(SAMPLES / "test")[0]]
    raw, flt = Classifier(cnn_raw, device="cpu"), Classifier(cnn_exported / "cnn.onnx", device="cpu")
    got, want = raw.predict(paths, top_k=3), flt.predict(paths, top_k=3)
    assert [p.label for p in got] == [p.label for p in want]
    assert max(abs(a.confidence - b.confidence) for a, b in zip(got, want, strict=True)) < 1e-5
    with pytest.raises(UsageError, match="uint8"):  # a float batch is refused, not cast and misread
        raw.logits(np.zeros((1, 32, 32, 3), np.float32))
    with pytest.raises(UsageError, match="float32"):
        flt.logits(np.zeros((1, 3, 32, 32), np.uint8))


def test_raw_int8_is_calibrated_on_pixels(cnn_raw: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        # --max-drop 10: the fixture's model is barely trained (~25%), so int8 rounding flips a few of its 100 labels
        # on some CPUs (3 on one with AVX512-VNNI); this test is about calibrating on pixels, not the accuracy gate
        app,
        [
            "quantize",
            str(cnn_raw),
            "--int8",
            "--out",
            str(tmp_path),
            "--limit",
            "100",
            "--calibration-count",
            "64",
            "--max-drop",
            "10",
        ],
    )
    assert result.exit_code == 0, result.output
    int8 = Classifier(tmp_path / "cnn.raw.int8.onnx", device="cpu")
    assert int8.info.layout == "NHWC" and int8.precision == "int8"
    # its probabilities are the float softmax of its logits (the Softmax is left out of quantisation)
    session = ort.InferenceSession(str(tmp_path / "cnn.raw.int8.onnx"), providers=["CPUExecutionProvider"])
    pixels = np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    logits, probabilities = session.run(None, {"image": pixels})
    expected = np.exp(logits - logits.max(1, keepdims=True))
    np.testing.assert_allclose(probabilities, expected / expected.sum(1, keepdims=True), atol=1e-6)


def test_raw_is_refused_for_formats_that_cannot_take_it(cnn_checkpoint: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["all", str(cnn_checkpoint), "--raw", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "--raw is for onnx only" in result.output
    assert not list(tmp_path.iterdir())


def test_pixels_of_inverts_normalisation_exactly(cnn_raw: Path) -> None:
    info = Classifier(cnn_raw, device="cpu").info
    pixels = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    x = ((pixels.astype(np.float32) / 255 - np.float32(info.mean)) / np.float32(info.std)).transpose(0, 3, 1, 2)
    np.testing.assert_array_equal(pixels_of(x, info), pixels)
    with pytest.raises(ValueError, match="8-bit"):
        pixels_of(x + 0.1, info)


def test_the_raw_wrapper_is_in_the_mode_of_the_model_it_wraps() -> None:
    """A model exported for inference is in eval mode, and so is its pixel wrapper: torch.onnx warns otherwise."""
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    assert not RawInput(model.eval(), (0.5,) * 3, (0.5,) * 3).training
    assert RawInput(model.train(), (0.5,) * 3, (0.5,) * 3).training
