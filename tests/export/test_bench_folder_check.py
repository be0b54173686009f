"""folder-check scores exactly one labelled split through the real cifar-infer, and refuses what it cannot score."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from typer.testing import CliRunner

from cifar_export.cli import app
from cifar_export.folder_check import run_measured

runner = CliRunner()


def test_an_imagefolder_root_scores_its_test_split_only(
    cnn_exported: Path, cifar_fixture: Path, tmp_path: Path
) -> None:
    out = tmp_path / "check.json"
    result = runner.invoke(
        app, ["folder-check", str(cnn_exported / "cnn.onnx"), "--data", str(cifar_fixture), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    check = json.loads(out.read_text())
    assert check["files"] == 300 and check["folder"].endswith("test")  # not the 200 train images as well
    rows = [json.loads(line) for line in out.with_name("check.predictions.jsonl").read_text().splitlines()]
    assert all("/test/" in r["path"] for r in rows)


def test_nothing_to_score_fails_loudly(cnn_exported: Path, cifar_fixture: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    unknown = tmp_path / "unknown"
    shutil.copytree(cifar_fixture / "test" / "cat", unknown / "kitty")
    for folder, says in ((empty, "no class folders"), (unknown, "does not know (kitty)")):
        result = runner.invoke(
            app,
            ["folder-check", str(cnn_exported / "cnn.onnx"), "--data", str(folder), "--out", str(tmp_path / "c.json")],
        )
        assert result.exit_code == 2 and says in result.stderr, result.output


def test_peak_rss_is_the_childs_own_not_the_parents(tmp_path: Path) -> None:
    import sys

    ballast = bytearray(600 * 2**20)  # the parent holds 600 MB; a small child must not report it
    ballast[::4096] = b"x" * len(ballast[::4096])
    _, _, peak_mb = run_measured([sys.executable, "-c", "import time; time.sleep(0.3)"])
    assert 1 < peak_mb < 100
    del ballast
