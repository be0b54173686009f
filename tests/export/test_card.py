"""The shipping path on a tiny real run: train -> export all -> folder-check through cifar-infer -> model card."""

import json
from dataclasses import replace

from typer.testing import CliRunner

from cifar_export.cli import app
from cifar_train.config import RECIPES
from cifar_train.run import train


def test_train_export_folder_check_and_card_agree(cifar_fixture, tmp_path):
    run = tmp_path / "cnn"
    cfg = replace(RECIPES["cnn"].config, data=str(cifar_fixture), out=str(run), epochs=2, val_size=50, device="cpu")
    metrics = train(cfg).metrics
    runner = CliRunner()

    r = runner.invoke(app, ["all", str(run / "best.pt")])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["folder-check", str(run / "cnn.onnx"), "--data", str(cifar_fixture / "test")])
    assert r.exit_code == 0, r.output
    check = json.loads((run / "folder_check.cnn.json").read_text())  # named after the model it checked
    again = runner.invoke(app, ["folder-check", str(run / "cnn.onnx"), "--data", str(cifar_fixture / "test")])
    assert again.exit_code == 2 and "--overwrite" in again.output  # a result is not replaced unasked
    assert check["files"] == check["classified"] == 300
    # The CLI, fed the JPEG files, reproduces the training run's own test accuracy on the same images.
    assert abs(check["accuracy"] - 100 * metrics["test_acc"]) < 0.1
    assert check["images_per_s"] > 0 and check["peak_rss_mb"] > 0

    r = runner.invoke(app, ["card", str(run)])
    assert r.exit_code == 0, r.output
    card = (run / "MODEL_CARD.md").read_text()
    assert f"**{100 * metrics['test_acc']:.2f}%**" in card
    assert "**cnn.onnx** (fp32" in card and "passed" in card and "FAILED" not in card
    assert f"accuracy **{check['accuracy']:.2f}%**" in card
    assert "## Reproduce" in card and "cifar-train cnn --data ../shared/cifar10-jpeg" in card


def test_card_without_a_run_is_one_line_error(tmp_path):
    r = CliRunner().invoke(app, ["card", str(tmp_path)])
    assert r.exit_code == 2 and "has no metrics.json" in r.output
