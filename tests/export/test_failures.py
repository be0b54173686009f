"""Parity must be able to fail: a model that differs from its checkpoint is caught and never published."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import cifar_export.export
from cifar_export.cli import app
from cifar_export.source import Source, build_model

runner = CliRunner()


def exported_in_train_mode(source: Source, tta: int = 0) -> torch.nn.Module:
    """The classic export bug: BatchNorm on batch statistics, dropout on."""
    return build_model(source, tta).train()


def exported_with_drifted_weights(source: Source, tta: int = 0) -> torch.nn.Module:
    """Weights that moved after the checkpoint was taken (by 1e-3, a typical fp16 round trip)."""
    model = build_model(source, tta)
    with torch.no_grad():
        model.classifier[-1].weight.add_(1e-3)
    return model


@pytest.mark.parametrize(
    ("command", "prepare"),
    [("torchscript", exported_in_train_mode), ("onnx", exported_with_drifted_weights)],
)
def test_a_model_that_differs_from_its_checkpoint_is_not_published(
    command: str, prepare, cnn_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cifar_export.export, "build_model", prepare)
    result = runner.invoke(app, [command, str(cnn_checkpoint), "--out", str(tmp_path), "--limit", "16"])
    assert result.exit_code == 3, result.output
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("cifar-export: error: check failed, not published")
    name, failed = {
        "onnx": ("cnn.onnx", "cnn.FAILED.onnx"),
        "torchscript": ("cnn.torchscript.pt", "cnn.torchscript.FAILED.pt"),
    }[command]
    assert not (tmp_path / name).exists() and not (tmp_path / f"{name}.parity.json").exists()
    assert (tmp_path / failed).is_file()  # kept for inspection, under a name no loader picks up
    report = json.loads((tmp_path / f"{failed}.parity.json").read_text())
    assert not report["published"] and report["parity"]["failures"]


def test_verify_fails_against_a_checkpoint_perturbed_after_export(
    cnn_exported: Path, cnn_checkpoint: Path, tmp_path: Path
) -> None:
    ckpt = torch.load(cnn_checkpoint, weights_only=True)
    ckpt["model"]["features.0.weight"] += 1e-2
    perturbed = tmp_path / "perturbed.pt"
    torch.save(ckpt, perturbed)
    args = ["verify", str(cnn_exported / "cnn.onnx"), "--checkpoint", str(perturbed), "--limit", "16"]
    result = runner.invoke(app, args)
    assert result.exit_code == 3, result.output
    assert "not the one the file was exported from" in result.stdout
    assert result.stderr.count("\n") == 1 and "does not match" in result.stderr


def test_a_failed_export_leaves_the_published_file_alone(
    cnn_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = runner.invoke(app, ["onnx", str(cnn_checkpoint), "--out", str(tmp_path), "--limit", "8"])
    assert good.exit_code == 0, good.output
    before = (tmp_path / "cnn.onnx").read_bytes()
    monkeypatch.setattr(cifar_export.export, "build_model", exported_with_drifted_weights)
    bad = runner.invoke(app, ["onnx", str(cnn_checkpoint), "--out", str(tmp_path), "--limit", "8", "--overwrite"])
    assert bad.exit_code == 3
    assert (tmp_path / "cnn.onnx").read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # atomic writes leave no debris


def test_a_published_file_is_not_replaced_without_overwrite(cnn_checkpoint: Path, tmp_path: Path) -> None:
    first = runner.invoke(app, ["onnx", str(cnn_checkpoint), "--out", str(tmp_path), "--limit", "300"])
    assert first.exit_code == 0, first.output
    report = (tmp_path / "cnn.onnx.parity.json").read_text()
    again = runner.invoke(app, ["onnx", str(cnn_checkpoint), "--out", str(tmp_path), "--limit", "8"])
    assert again.exit_code == 2 and "--overwrite" in again.stderr
    assert (tmp_path / "cnn.onnx.parity.json").read_text() == report  # the 300-image report stands
