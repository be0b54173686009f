"""The repository holds what a user or a test needs: binaries a command can rebuild are not committed."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MAX_BYTES = 1_000_000
# The files over 1 MB that stay, and why: nothing can rebuild them without hours of training.
ALLOWED = {
    "runtime/cifar_runtime/models/cifar10-airbench95.onnx": "the bundled model",
    "runtime/cifar_runtime/models/cifar10-airbench95.int8.onnx": "its int8 sibling",
    "runtime/cifar_runtime/models/cifar10-airbench94.int8.onnx": "the small bundled model (--model small), int8 only",
    "artifacts/fast-wide-long/best.pt": "the bundled model's checkpoint (exports, temperature, distillation)",
    "artifacts/cnn/best.pt": "the seed CNN's reproduction",
}


def tracked_files() -> list[str]:
    done = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip("not a git checkout")
    return [name for name in done.stdout.split("\0") if name]


def test_no_committed_file_over_1_mb_outside_the_allow_list() -> None:
    big = {name for name in tracked_files() if (REPO / name).is_file() and (REPO / name).stat().st_size > MAX_BYTES}
    assert big <= set(ALLOWED), sorted(big - set(ALLOWED))


def test_the_runtime_package_holds_no_benchmark_code() -> None:
    package = [name for name in tracked_files() if name.startswith("runtime/cifar_runtime/") and name.endswith(".py")]
    assert package and not [name for name in package if "bench" in Path(name).name or "hostile" in name]
    reach = re.compile(r"^\s*(from|import) benchmarks\b", re.MULTILINE)
    imports = [name for name in package if reach.search((REPO / name).read_text())]
    assert not imports, imports  # benchmarks/ measures the package; the package never reaches into it
