"""Errors a user can cause: one line on stderr, no traceback, the documented exit code."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from cifar_export.cli import app
from cifar_export.images import SAMPLES

runner = CliRunner()


def fails(args: list[str], code: int, says: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == code, result.output
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("cifar-export: error: ") and says in result.stderr
    assert "Traceback" not in result.output


def test_missing_checkpoint(tmp_path: Path) -> None:
    fails(["onnx", str(tmp_path / "nope.pt")], 2, "does not exist")


def test_a_run_folder_instead_of_its_checkpoint_says_which_file_to_pass(cnn_checkpoint: Path) -> None:
    run = cnn_checkpoint.parent
    fails(
        ["onnx", str(run)],
        2,
        f"{run} is a folder, not a checkpoint: pass the .pt file of a cifar-train run, e.g. {run / 'best.pt'}",
    )


def test_corrupt_checkpoint(tmp_path: Path) -> None:
    bad = tmp_path / "best.pt"
    bad.write_bytes(b"\x00not a checkpoint" * 100)
    fails(["all", str(bad)], 2, "cannot read checkpoint")


def test_truncated_checkpoint(cnn_checkpoint: Path, tmp_path: Path) -> None:
    cut = tmp_path / "best.pt"
    cut.write_bytes(cnn_checkpoint.read_bytes()[:100_000])
    fails(["torchscript", str(cut)], 2, "cannot read checkpoint")


@pytest.mark.parametrize(
    ("arch", "says"),
    [
        (
            "resnet18",
            "do not fit architecture 'resnet18': 122 weights missing (e.g. bn1.bias); 39 unexpected "
            "(e.g. classifier.1.bias): was it trained with another --arch or number of classes?",
        ),
        ("vgg16", "unknown architecture"),
    ],
)
def test_wrong_architecture(arch: str, says: str, cnn_checkpoint: Path, tmp_path: Path) -> None:
    ckpt = torch.load(cnn_checkpoint, weights_only=True)
    ckpt["arch"] = arch  # CNN weights under another architecture's name
    path = tmp_path / "best.pt"
    torch.save(ckpt, path)
    fails(["onnx", str(path), "--out", str(tmp_path)], 2, says)


def test_unwritable_out_dir(cnn_checkpoint: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where the folder should go")  # root ignores chmod; a file in the path does not
    fails(["onnx", str(cnn_checkpoint), "--out", str(blocker / "out")], 2, "cannot write to")


def test_no_checkpoint_and_no_artifacts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    fails(["all"], 2, "no CHECKPOINT given")


def test_opset_the_exporter_cannot_write(cnn_checkpoint: Path, tmp_path: Path) -> None:
    fails(["onnx", str(cnn_checkpoint), "--out", str(tmp_path), "--opset", "16"], 2, "--opset 16")


def test_data_with_other_classes(cnn_checkpoint: Path, tmp_path: Path) -> None:
    (tmp_path / "test" / "cats").mkdir(parents=True)
    src = SAMPLES / "test" / "cat" / "0000.jpg"
    (tmp_path / "test" / "cats" / "0.jpg").write_bytes(src.read_bytes())
    fails(["onnx", str(cnn_checkpoint), "--out", str(tmp_path), "--data", str(tmp_path)], 2, "does not know (cats)")


def test_verify_a_file_that_is_not_a_model(tmp_path: Path) -> None:
    junk = tmp_path / "cnn.onnx"
    junk.write_bytes(b"garbage")
    fails(["verify", str(junk)], 2, "cannot load model")


def test_help_documents_the_exit_codes() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "Exit codes" in result.output and "parity" in result.output


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["--opset", "99"], "--opset 99 is not supported"),
        (["--static-batch", "-1"], "--static-batch"),
        (["--limit", "-5"], "--limit"),
        (["--tta", "3"], "--tta"),
    ],
)
def test_out_of_range_flags_are_refused_before_any_work(
    flags: list[str], says: str, cnn_checkpoint: Path, tmp_path: Path
) -> None:
    result = runner.invoke(app, ["onnx", str(cnn_checkpoint), "--out", str(tmp_path), *flags])
    assert result.exit_code == 2, result.output
    assert says in result.output and "Traceback" not in result.output
    assert not list(tmp_path.iterdir())  # nothing was exported


class Payload:
    """Unpickling this runs a command: what a malicious checkpoint would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("command", ["onnx", "verify"])
def test_a_checkpoint_carrying_pickled_code_is_refused_and_nothing_runs(
    command: str, cnn_checkpoint: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    ckpt = torch.load(cnn_checkpoint, weights_only=True)
    ckpt["metrics"] = Payload(marker)
    evil = tmp_path / "best.pt"
    torch.save(ckpt, evil)
    args = {
        "onnx": ["onnx", str(evil), "--out", str(tmp_path / "o")],
        "verify": ["verify", str(tmp_path / "cnn.onnx"), "--checkpoint", str(evil)],
    }[command]
    if command == "verify":
        assert runner.invoke(app, ["onnx", str(cnn_checkpoint), "--out", str(tmp_path), "--limit", "8"]).exit_code == 0
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "cannot read checkpoint" in result.stderr, result.output
    assert not marker.exists()


def test_switches_show_no_value_placeholder() -> None:
    for command in ("quantize", "onnx", "all"):
        lines = runner.invoke(app, [command, "--help"], terminal_width=200).output.splitlines()
        assert not [line for line in lines if "<bool>" in line and "--help" not in line], command


@pytest.mark.parametrize("name", ["cat\x1b[2J", "line\nbreak", ""])
def test_hostile_class_names_are_refused_before_anything_is_written(
    name: str, cnn_checkpoint: Path, tmp_path: Path
) -> None:
    ckpt = torch.load(cnn_checkpoint, weights_only=True)
    ckpt["classes"][3] = name
    path = tmp_path / "best.pt"
    torch.save(ckpt, path)
    out = tmp_path / "out"
    result = runner.invoke(app, ["onnx", str(path), "--out", str(out), "--limit", "8"])
    assert result.exit_code == 2 and "invalid metadata" in result.stderr, result.output
    assert "\x1b" not in result.stderr and result.stderr.count("\n") == 1
    assert not out.exists() or not list(out.iterdir())


def test_help_and_a_missing_input_answer_before_torch_loads() -> None:
    """`cifar-export --help` and a typo'd path take a fraction of `import torch` (5 s here): nothing heavy loads."""
    import subprocess
    import sys

    probe = (
        "import sys; from typer.testing import CliRunner; from cifar_export.cli import app; "
        "r = CliRunner().invoke(app, ['--help']); r2 = CliRunner().invoke(app, ['onnx', 'nope.pt']); "
        "print(r.exit_code, r2.exit_code, 'torch' in sys.modules, 'onnx' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["0", "2", "False", "False"], done.stderr
