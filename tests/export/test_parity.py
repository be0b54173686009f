"""Both formats, both architectures, real fixture images: the exported files match the checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from typer.testing import CliRunner

from cifar_export.cli import app
from cifar_export.images import load_images
from cifar_runtime import Classifier

runner = CliRunner()


def parity_of(folder: Path, name: str) -> dict:
    return json.loads((folder / f"{name}.parity.json").read_text())


def assert_matches(report: dict, batch_sizes: list[int]) -> None:
    assert report["published"] and report["parity"]["passed"]
    rows = report["parity"]["rows"]
    assert [r["batch_size"] for r in rows] == batch_sizes
    for r in rows:
        assert r["max_abs"] <= 1e-4
        assert r["top1_agreement"] == 100.0
        assert r["softmax_max_diff"] <= 1e-4


def test_cnn_every_format_matches_the_checkpoint(cnn_exported: Path) -> None:
    assert sorted(p.name for p in cnn_exported.iterdir()) == [
        "cnn.onnx",
        "cnn.onnx.parity.json",
        "cnn.pt2",
        "cnn.pt2.parity.json",
        "cnn.torchscript.pt",
        "cnn.torchscript.pt.parity.json",
    ]  # no external-data files, no temp files left behind
    for name in ("cnn.onnx", "cnn.pt2", "cnn.torchscript.pt"):
        assert_matches(parity_of(cnn_exported, name), [1, 8, 7])


def test_the_parity_images_are_a_meaningful_test(cnn_exported: Path) -> None:
    """A model that predicts one class everywhere would agree 100% with anything: this one does not."""
    classifier = Classifier(cnn_exported / "cnn.onnx", device="cpu")
    images = load_images("", "test", classifier.info, limit=40)
    logits = classifier.logits(images.inputs)
    assert len(np.unique(logits.argmax(1))) >= 3


def test_resnet18_at_224_matches_in_both_formats(resnet_exported: Path) -> None:
    for name in ("resnet18.onnx", "resnet18.torchscript.pt"):
        assert_matches(parity_of(resnet_exported, name), [1, 8, 7])
    proto = onnx.load(str(resnet_exported / "resnet18.onnx"))
    assert proto.graph.input[0].type.tensor_type.shape.dim[2].dim_value == 224


def test_static_batch_fixes_the_axis_and_is_checked_at_that_size(cnn_checkpoint: Path, tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["onnx", str(cnn_checkpoint), "--out", str(tmp_path), "--static-batch", "4", "--limit", "10"]
    )
    assert result.exit_code == 0, result.output
    proto = onnx.load(str(tmp_path / "cnn.onnx"))
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 4
    assert_matches(parity_of(tmp_path, "cnn.onnx"), [4])


def test_verify_finds_the_checkpoint_by_its_hash(cnn_exported: Path, cnn_checkpoint: Path, tmp_path: Path) -> None:
    # The model sits beside a copy of its checkpoint under another name: only the sha256 can find it.
    (tmp_path / "model.onnx").write_bytes((cnn_exported / "cnn.onnx").read_bytes())
    (tmp_path / "weights-copy.pt").write_bytes(cnn_checkpoint.read_bytes())
    result = runner.invoke(app, ["verify", str(tmp_path / "model.onnx"), "--limit", "16"])
    assert result.exit_code == 0, result.output
    assert "PASSED" in result.output and "weights-copy.pt" in result.output
