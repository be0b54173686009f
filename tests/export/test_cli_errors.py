"""Errors a user can cause: one line on stderr, no traceback, the documented exit code."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from cifar_export.cli import app

runner = CliRunner()


def fails(args: list[str], code: int, says: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == code, result.output
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("error: ") and says in result.stderr
    assert "Traceback" not in result.output


def test_missing_checkpoint(tmp_path: Path) -> None:
    fails(["onnx", str(tmp_path / "nope.pt")], 1, "does not exist")


def test_corrupt_checkpoint(tmp_path: Path) -> None:
    bad = tmp_path / "best.pt"
    bad.write_bytes(b"\x00not a checkpoint" * 100)
    fails(["all", str(bad)], 1, "cannot read checkpoint")


def test_truncated_checkpoint(cnn_checkpoint: Path, tmp_path: Path) -> None:
    cut = tmp_path / "best.pt"
    cut.write_bytes(cnn_checkpoint.read_bytes()[:100_000])
    fails(["torchscript", str(cut)], 1, "cannot read checkpoint")


@pytest.mark.parametrize(("arch", "says"), [("resnet18", "do not fit"), ("vgg16", "unknown architecture")])
def test_wrong_architecture(arch: str, says: str, cnn_checkpoint: Path, tmp_path: Path) -> None:
    ckpt = torch.load(cnn_checkpoint, weights_only=True)
    ckpt["arch"] = arch  # CNN weights under another architecture's name
    path = tmp_path / "best.pt"
    torch.save(ckpt, path)
    fails(["onnx", str(path), "--out", str(tmp_path)], 1, says)


def test_unwritable_out_dir(cnn_checkpoint: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where the folder should go")  # root ignores chmod; a file in the path does not
    fails(["onnx", str(cnn_checkpoint), "--out", str(blocker / "out")], 1, "cannot write to")


def test_no_checkpoint_and_no_artifacts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    fails(["all"], 1, "no CHECKPOINT given")


def test_opset_the_exporter_cannot_write(cnn_checkpoint: Path, tmp_path: Path) -> None:
    fails(["onnx", str(cnn_checkpoint), "--out", str(tmp_path), "--opset", "16"], 1, "--opset 16")


def test_data_with_other_classes(cnn_checkpoint: Path, tmp_path: Path) -> None:
    (tmp_path / "test" / "cats").mkdir(parents=True)
    src = Path(__file__).parents[1] / "fixtures" / "cifar10" / "test" / "cat" / "0000.jpg"
    (tmp_path / "test" / "cats" / "0.jpg").write_bytes(src.read_bytes())
    fails(["onnx", str(cnn_checkpoint), "--out", str(tmp_path), "--data", str(tmp_path)], 1, "classes")


def test_verify_a_file_that_is_not_a_model(tmp_path: Path) -> None:
    junk = tmp_path / "cnn.onnx"
    junk.write_bytes(b"garbage")
    fails(["verify", str(junk)], 1, "cannot read")


def test_bench_unknown_architecture(tmp_path: Path) -> None:
    fails(["bench", "--arch", "vgg16", "--out", str(tmp_path)], 1, "unknown architecture")


def test_help_documents_the_exit_codes() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "Exit codes" in result.output and "parity" in result.output
