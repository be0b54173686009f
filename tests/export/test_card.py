"""The shipping path on a tiny real run: train -> export all -> the folder check through cifar-infer -> model card."""

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

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
    folder_check = [
        sys.executable,
        "-m",
        "benchmarks.folder_check",
        str(run / "cnn.onnx"),
        "--data",
        str(cifar_fixture),
    ]
    r = subprocess.run(folder_check, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    check = json.loads((run / "folder_check.cnn.json").read_text())  # named after the model it checked
    again = subprocess.run(folder_check, capture_output=True, text=True)
    assert again.returncode != 0 and "--overwrite" in again.stderr  # a result is not replaced unasked
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
    # the card states the run's own data and the command with every flag that differs from the recipe (the batch
    # fitted to 150 images among them: the command reproduces the run even if the fitting rule changes)
    assert (
        "## Reproduce" in card
        and f"cifar-train cnn --epochs 2 --batch-size 16 --val-size 50 --data {metrics['data']['source']}" in card
    )

    (run / "cnn.onnx").unlink()  # a record committed without its regenerable file, as in artifacts/
    assert runner.invoke(app, ["card", str(run)]).exit_code == 0
    assert "**cnn.onnx** (fp32) against" in (run / "MODEL_CARD.md").read_text()  # no size, and no "nan MB"


def test_card_without_a_run_is_one_line_error(tmp_path):
    r = CliRunner().invoke(app, ["card", str(tmp_path)])
    assert r.exit_code == 2 and "has no metrics.json" in r.output


def test_the_card_never_writes_over_one_of_its_inputs(tmp_path):
    import shutil

    run = tmp_path / "cnn"
    shutil.copytree(Path(__file__).parents[2] / "artifacts" / "cnn", run, ignore=shutil.ignore_patterns("*.pt"))
    before = (run / "metrics.json").read_bytes()
    r = CliRunner().invoke(app, ["card", str(run), "--out", str(run / "metrics.json")])
    assert r.exit_code == 2 and "is one of the card's inputs" in r.output
    assert (run / "metrics.json").read_bytes() == before


def test_a_distilled_runs_card_shows_its_teachers_ensemble_and_students_with_their_cost(tmp_path):
    import shutil

    run = tmp_path / "cnn"
    shutil.copytree(Path(__file__).parents[2] / "artifacts" / "cnn", run, ignore=shutil.ignore_patterns("*.pt"))
    assert CliRunner().invoke(app, ["card", str(run)]).exit_code == 0
    assert "Distillation" not in (run / "MODEL_CARD.md").read_text()  # no report, no section

    def row(model, role, tta, val, test, s):
        return {"model": model, "role": role, "tta": tta, "val_acc": val, "test_acc": test, "s_per_image": s}

    rows = [
        row("a/best.pt", "teacher", 2, 0.9256, 0.9242, 0.0012),
        row("ensemble of the teachers", "ensemble", 2, 0.9371, 0.9333, 0.0030),
        row("s/best.pt", "student", 0, 0.9124, 0.9101, 0.0001),
    ]
    report = {"command": "python -m benchmarks.ensemble --teachers a/best.pt", "machine": "cpu", "rows": rows}
    report["cost_unit"] = "the cheapest one-view student"
    for r in rows:
        r["cost"] = r["s_per_image"] / 0.0001
    (run / "ensemble.json").write_text(json.dumps(report))
    assert CliRunner().invoke(app, ["card", str(run)]).exit_code == 0
    card = (run / "MODEL_CARD.md").read_text()
    assert "## Distillation: teachers and students" in card and "`python -m benchmarks.ensemble" in card
    assert "| ensemble of the teachers | ensemble | six views | 93.71% | 93.33% | 3.00 | 30.0× |" in card.replace(
        "`", ""
    )
    assert "| s/best.pt | student | one view | 91.24% | 91.01% | 0.10 | 1.0× |" in card.replace("`", "")
