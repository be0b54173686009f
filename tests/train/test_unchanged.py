"""CIFAR-10 runs are what they were before training took datasets other than CIFAR-10: short runs of the seed CNN
and of the fast recipes on the fixture reproduce figures recorded with the code of commit c91d62e, the last one
before that change:

    git worktree add /tmp/before c91d62e
    PYTHONPATH=/tmp/before/train:/tmp/before/runtime:/tmp/before/tests/train python tests/train/test_unchanged.py

prints RECORDED as that code computes it (run from the repository root; the fixture is this checkout's).
Tolerances allow for another CPU's float rounding (AVX2 against AVX-512), not for a changed pipeline: a changed
resize, normalisation, image order or batch size moves the losses in their second or third digit.
"""

from __future__ import annotations

import csv
import json
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))  # recipes_for_tests, also when run as a script
from recipes_for_tests import fast_config  # noqa: E402

from cifar_train import RECIPES  # noqa: E402
from cifar_train.run import train  # noqa: E402

FIXTURE = Path(__file__).parents[2] / "export" / "cifar_export" / "samples" / "cifar10"  # conftest's cifar_fixture

# name: (recipe, changes to the fixture config); cnn with the batch its recipe had, fixed (a fitted one differs)
RUNS = {
    "cnn": ("cnn", {"epochs": 2, "batch_size": 16}),
    "fast": ("fast", {"epochs": 3}),
    "fast-wide-long": ("fast-wide-long", {"epochs": 2}),
}

RECORDED = {  # printed by this file's __main__ at commit c91d62e (module docstring)
    "cnn": {
        "train_loss": [4.037474212646484, 3.0074017969767253],
        "val_acc": [0.10000000149011612, 0.10000000149011612],
        "test_acc": 0.09666666388511658,
        "weights_abs_sum": 27678.787869281055,
    },
    "fast": {
        "train_loss": [2.310930848121643, 2.2784367203712463, 2.236193060874939],
        "val_acc": [0.1599999964237213, 0.3199999928474426, 0.3400000035762787],
        "test_acc": 0.16333332657814026,
        "weights_abs_sum": 7457.169395515837,
    },
    "fast-wide-long": {
        "train_loss": [2.3074980080127716, 2.2752482295036316],
        "val_acc": [0.20000000298023224, 0.2199999988079071],
        "test_acc": 0.17000000178813934,
        "weights_abs_sum": 12117.044354252455,
    },
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


@pytest.mark.parametrize("name", list(RUNS))
def test_a_short_cifar_run_reproduces_the_figures_recorded_before_datasets(name: str, tmp_path: Path) -> None:
    got, recorded = figures(name, tmp_path / name), RECORDED[name]
    assert got["train_loss"] == pytest.approx(recorded["train_loss"], rel=1e-4)
    assert got["weights_abs_sum"] == pytest.approx(recorded["weights_abs_sum"], rel=1e-4)
    one_image = 1 / 50  # an image at a decision boundary may fall the other way on another CPU
    assert got["val_acc"] == pytest.approx(recorded["val_acc"], abs=one_image + 1e-9)
    assert got["test_acc"] == pytest.approx(recorded["test_acc"], abs=1 / 300 + 1e-9)


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        print(json.dumps({name: figures(name, Path(tmp) / name) for name in RUNS}, indent=1))
