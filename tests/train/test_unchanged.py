"""CIFAR-10 runs are what they were before training took datasets other than CIFAR-10: short runs of the seed CNN
and of the fast recipes on the fixture give the same losses, accuracies and weights with today's code as with the
code of commit c91d62e, the last one before that change, both run here, on this machine's CPU (another CPU rounds
floats otherwise: figures recorded on an AMD EPYC differed from an Intel Xeon's in the fourth digit).

The code of c91d62e comes from this clone's history (`git archive`); the fixture is this checkout's. By hand,
`python tests/train/test_unchanged.py` prints today's figures as JSON.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import replace
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))  # recipes_for_tests, also when run as a script
from recipes_for_tests import fast_config  # noqa: E402

from cifar_train import RECIPES  # noqa: E402
from cifar_train.run import train  # noqa: E402

REPO = Path(__file__).parents[2]
BEFORE = "c91d62e"
FIXTURE = REPO / "export" / "cifar_export" / "samples" / "cifar10"  # conftest's cifar_fixture

# name: (recipe, changes to the fixture config); cnn with the batch its recipe had, fixed (a fitted one differs)
RUNS = {
    "cnn": ("cnn", {"epochs": 2, "batch_size": 16}),
    "fast": ("fast", {"epochs": 3}),
    "fast-wide-long": ("fast-wide-long", {"epochs": 2}),
}


def config(name: str, out: Path):
    recipe, changes = RUNS[name]
    if recipe == "cnn":
        base = {"data": str(FIXTURE), "out": str(out), "val_size": 50, "device": "cpu"}
        return replace(RECIPES["cnn"].config, **{**base, **changes})
    return fast_config(FIXTURE, out, recipe, **changes)


def figures(name: str, out: Path) -> dict[str, object]:
    """One short run's losses, validation accuracies, test accuracy and a checksum of its best weights."""
    result = train(config(name, out))
    rows = list(csv.DictReader((out / "history.csv").read_text().splitlines()))
    best = torch.load(out / "best.pt", map_location="cpu", weights_only=True)["model"]
    return {
        "train_loss": [float(r["train_loss"]) for r in rows],
        "val_acc": [float(r["val_acc"]) for r in rows],
        "test_acc": float(result.metrics["test_acc"]),
        "weights_abs_sum": sum(float(t.double().abs().sum()) for t in best.values() if t.is_floating_point()),
    }


@pytest.fixture(scope="module")
def before(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, object]]:
    """Every run's figures from the code of BEFORE: this file, run as a script beside that commit's packages."""
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", BEFORE, "train", "runtime", "tests/train"], capture_output=True
    )
    if archive.returncode != 0:
        from extras import missing

        missing(f"commit {BEFORE} is not in this clone's history (a shallow clone?): {archive.stderr.decode().strip()}")
    src = tmp_path_factory.mktemp("before")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(src, filter="data")
    script = src / "tests" / "train" / Path(__file__).name  # beside that commit's recipes_for_tests
    script.write_text(Path(__file__).read_text())
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(src / p) for p in ("train", "runtime"))}
    done = subprocess.run(
        [sys.executable, str(script), str(FIXTURE)], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    printed = json.loads(done.stdout)
    assert printed["code"] == str(src / "train"), printed["code"]  # that commit's package, not this checkout's
    return printed["runs"]


@pytest.mark.parametrize("name", list(RUNS))
def test_a_short_cifar_run_gives_what_it_gave_before_datasets(name: str, before: dict, tmp_path: Path) -> None:
    assert figures(name, tmp_path / name) == before[name]  # bit for bit: the same code path on the same CPU


if __name__ == "__main__":  # [FIXTURE]: prints where cifar_train was imported from, and every run's figures
    import cifar_train

    FIXTURE = Path(sys.argv[1]) if len(sys.argv) > 1 else FIXTURE
    with tempfile.TemporaryDirectory() as tmp:
        runs = {name: figures(name, Path(tmp) / name) for name in RUNS}
    print(json.dumps({"code": str(Path(cifar_train.__file__).parents[1]), "runs": runs}, indent=1))
