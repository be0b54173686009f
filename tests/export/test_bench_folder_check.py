"""The folder check scores exactly one labelled split through the real cifar-infer, and refuses what it cannot
score; the one measurer reports a child's own peak memory."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from benchmarks.measure import run_measured


def folder_check(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "benchmarks.folder_check", *args], capture_output=True, text=True)


def test_an_imagefolder_root_scores_its_test_split_only(
    cnn_exported: Path, cifar_fixture: Path, tmp_path: Path
) -> None:
    out = tmp_path / "check.json"
    result = folder_check(str(cnn_exported / "cnn.onnx"), "--data", str(cifar_fixture), "--out", str(out))
    assert result.returncode == 0, result.stderr
    check = json.loads(out.read_text())
    assert check["files"] == 300 and check["folder"].endswith("test")  # not the 200 train images as well
    assert 0 <= check["ece"] <= 100 and check["min_confidence"] is None and 20 < check["peak_rss_mb"] < 400
    rows = [json.loads(line) for line in out.with_name("check.predictions.jsonl").read_text().splitlines()]
    assert all("/test/" in r["path"] for r in rows)


def test_nothing_to_score_fails_loudly(cnn_exported: Path, cifar_fixture: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    unknown = tmp_path / "unknown"
    shutil.copytree(cifar_fixture / "test" / "cat", unknown / "kitty")
    for folder, says in ((empty, "no class folders"), (unknown, "does not know (kitty)")):
        result = folder_check(str(cnn_exported / "cnn.onnx"), "--data", str(folder), "--out", str(tmp_path / "c.json"))
        assert result.returncode == 1 and says in result.stderr, result.stderr


def test_peak_rss_is_the_childs_own_not_the_parents(tmp_path: Path) -> None:
    ballast = bytearray(600 * 2**20)  # the parent holds 600 MB; a small child must not report it
    ballast[::4096] = b"x" * len(ballast[::4096])
    run = run_measured([sys.executable, "-c", "import time; time.sleep(0.3)"])
    assert run.returncode == 0 and 1 < run.peak_rss_mb < 100
    del ballast
