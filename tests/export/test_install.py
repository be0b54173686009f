"""A plain (non-editable) install of the three packages works from any directory: the README's promise.

Marked `install` (it builds three wheels and a venv, a few minutes): CI runs it after the default suite.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]


@pytest.mark.install
def test_a_normal_install_exports_with_parity_on_shipped_images_from_tmp(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    # The README's line, as a user types it: built as wheels, not linked to the checkout.
    subprocess.run([*pip, str(ROOT / "runtime"), str(ROOT / "train"), str(ROOT / "export")], check=True, cwd=tmp_path)
    out = tmp_path / "exported"
    r = subprocess.run(
        [str(venv / "bin" / "cifar-export"), "onnx", str(ROOT / "artifacts" / "cnn" / "best.pt"), "--out", str(out)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    report = (out / "cnn.onnx.parity.json").read_text()
    assert '"passed": true' in report and "site-packages/cifar_export/samples/cifar10/test" in report
