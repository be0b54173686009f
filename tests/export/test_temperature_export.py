"""A fitted temperature travels into every exported graph and its metadata; older checkpoints export as before."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from typer.testing import CliRunner

from cifar_export.cli import app
from cifar_export.engines import pixels_of
from cifar_export.images import SAMPLES, load_images
from cifar_export.source import load_source
from cifar_runtime import Classifier
from cifar_runtime.cli import app as infer_app
from cifar_train import model_from_checkpoint
from tests.export.conftest import TEMPERATURE, one_thread


def export(args: list[str]) -> None:
    with one_thread():
        result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output


def network_logits(checkpoint: Path, inputs: np.ndarray) -> np.ndarray:
    model = model_from_checkpoint(load_source(checkpoint).checkpoint)
    with torch.inference_mode():
        return model(torch.from_numpy(inputs)).numpy()


def test_every_format_divides_the_logits_by_the_temperature_and_says_so(calibrated_checkpoint, tmp_path):
    export(["all", str(calibrated_checkpoint), "--out", str(tmp_path), "--limit", "20"])
    export(["onnx", str(calibrated_checkpoint), "--raw", "--out", str(tmp_path), "--limit", "20"])
    classifier = Classifier(tmp_path / "cnn.onnx")
    images = load_images("", "test", classifier.info, 20)
    expected = network_logits(calibrated_checkpoint, images.inputs) / TEMPERATURE
    assert classifier.temperature == TEMPERATURE
    assert classifier.info.recommended_min_confidence == 0.42
    np.testing.assert_allclose(classifier.logits(images.inputs), expected, atol=1e-4)
    scripted = torch.jit.load(str(tmp_path / "cnn.torchscript.pt"))
    with torch.inference_mode():
        np.testing.assert_allclose(scripted(torch.from_numpy(images.inputs)).numpy(), expected, atol=1e-4)
    raw = Classifier(tmp_path / "cnn.raw.onnx")
    assert raw.temperature == TEMPERATURE
    pixels = pixels_of(images.inputs, raw.info)  # the uint8 pixels those inputs were made from
    probabilities = raw._session.run(["probabilities"], {"image": pixels})
    e = np.exp(expected - expected.max(1, keepdims=True))
    np.testing.assert_allclose(probabilities[0], e / e.sum(1, keepdims=True), atol=1e-5)
    report = json.loads((tmp_path / "cnn.onnx.parity.json").read_text())
    assert report["published"] and report["parity"]["rows"][0]["max_abs"] < 1e-4  # parity on calibrated logits


def test_int8_keeps_the_temperature(calibrated_checkpoint, tmp_path):
    export(["onnx", str(calibrated_checkpoint), "--out", str(tmp_path), "--limit", "20"])
    export(["quantize", str(tmp_path / "cnn.onnx"), "--int8", "--limit", "40", "--max-drop", "100"])
    assert Classifier(tmp_path / "cnn.int8.onnx").temperature == TEMPERATURE


def test_a_file_without_a_temperature_runs_and_says_it_is_uncalibrated(cnn_exported):
    model = cnn_exported / "cnn.onnx"
    assert Classifier(model).temperature is None
    result = CliRunner().invoke(infer_app, ["--model", str(model), "--info"])
    assert result.exit_code == 0 and "confidence: uncalibrated" in result.output
    refused = CliRunner().invoke(
        infer_app, ["--model", str(model), "--min-confidence", "recommended", str(SAMPLES / "test")]
    )
    assert refused.exit_code == 2 and "records no recommended confidence threshold" in refused.output
