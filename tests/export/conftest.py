"""Checkpoints made here from the real fixture images, in seconds, and shared by the export tests.

Random weights alone make a model that predicts one class for every image, and then "100% top-1 agreement"
proves nothing; so each model is fitted for a few steps on the fixture's train split first. That also moves
BatchNorm's running statistics off their 0/1 initial values.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from cifar_export.cli import app
from cifar_export.images import SAMPLES
from cifar_train import RECIPES, build_checkpoint, create_model, eval_transform, get_spec, load_image_folder
from cifar_train.models import CIFAR_MEAN_STD


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """One torch intra-op thread: on two cores shared with a training run, OpenMP threads waiting for each
    other make these tests ~2.5x slower (105 s vs 42 s measured). Restored after, so other suites keep theirs."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    with one_thread():
        yield


def make_checkpoint(arch: str, path: Path, seed: int = 0, recipe: str | None = None) -> Path:
    """Save a cifar-train style checkpoint of a seeded model fitted briefly on fixture images (`recipe`: whose
    config it records; the recipe named after the architecture when None)."""
    torch.manual_seed(seed)
    cfg = RECIPES[recipe or arch].config
    model = create_model(arch, num_classes=10)
    train = load_image_folder(SAMPLES, "train")
    mean, std = get_spec(arch).normalisation or CIFAR_MEAN_STD  # as build_checkpoint records them
    x = eval_transform(cfg.image_size, mean, std, stored=32)(train.images)  # (200, 3, S, S)
    y = train.labels
    if arch != "resnet18":
        fit(model, x, y, steps=60)  # ~26% on the test samples: enough to make agreement mean something
    else:
        # ResNet18 at 224 is slow on CPU: BN statistics from 32 images, then only the head is fitted.
        idx = torch.randperm(len(y))[:32]
        model.train()
        with torch.no_grad():
            model(x[idx])
        head = model.fc
        model.fc = torch.nn.Identity()
        model.eval()
        with torch.no_grad():
            features = model(x[idx])  # (32, 512)
        fit(head, features, y[idx], steps=100)
        model.fc = head
    ckpt = build_checkpoint(model, asdict(cfg), list(train.classes), metrics={"val_acc": 0.25}, epoch=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ckpt, path)
    return path


def fit(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int) -> None:
    """A few Adam steps on random batches of 32."""
    model.train()
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(steps):
        idx = torch.randint(len(y), (32,), generator=g)
        loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()


@pytest.fixture(scope="session")
def cnn_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    with one_thread():
        return make_checkpoint("cnn", tmp_path_factory.mktemp("cnn") / "best.pt")


@pytest.fixture(scope="session")
def airbench94_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """airbench94's net as the `fast` recipe records it: it ends in a global max (ReduceMax) before its head."""
    with one_thread():
        return make_checkpoint("airbench94", tmp_path_factory.mktemp("airbench94") / "best.pt", recipe="fast")


@pytest.fixture(scope="session")
def resnet_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    with one_thread():
        return make_checkpoint("resnet18", tmp_path_factory.mktemp("resnet18") / "best.pt")


def export_all(checkpoint: Path, out: Path, limit: int) -> Path:
    """`cifar-export all` into `out`: both files and their parity reports."""
    with one_thread():
        result = CliRunner().invoke(app, ["all", str(checkpoint), "--out", str(out), "--limit", str(limit)])
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="session")
def cnn_exported(cnn_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_all(cnn_checkpoint, tmp_path_factory.mktemp("cnn-export"), limit=40)


@pytest.fixture(scope="session")
def resnet_exported(resnet_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    # ResNet18 at 224 costs ~50 ms an image on this CPU: 12 images, each through 3 batch sizes x 2 formats
    return export_all(resnet_checkpoint, tmp_path_factory.mktemp("resnet18-export"), limit=12)


@pytest.fixture(scope="session")
def cnn_raw(cnn_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`cifar-export onnx --raw`: the self-contained file (uint8 NHWC pixels in), parity-checked on 100 images."""
    out = tmp_path_factory.mktemp("cnn-raw")
    with one_thread():
        result = CliRunner().invoke(app, ["onnx", str(cnn_checkpoint), "--raw", "--out", str(out), "--limit", "100"])
    assert result.exit_code == 0, result.output
    return out / "cnn.raw.onnx"


TEMPERATURE = 0.5  # sharper, as label-smoothed models need


@pytest.fixture(scope="session")
def calibrated_checkpoint(cnn_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The cnn fixture checkpoint with a temperature fit recorded at TTA level 0, as a run's finish() records it."""
    ckpt = torch.load(cnn_checkpoint, weights_only=True)
    threshold = {"target_accuracy": 0.99, "threshold": 0.42, "val_coverage": 0.5, "val_accuracy": 0.99}
    ckpt["temperature_scaling"] = {
        "0": {"temperature": TEMPERATURE, "fitted_on": "val (50 images)", "threshold": threshold}
    }
    path = tmp_path_factory.mktemp("calibrated") / "best.pt"
    torch.save(ckpt, path)
    return path


@pytest.fixture(scope="session")
def calibrated_raw(calibrated_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The self-contained file of the calibrated checkpoint: its probabilities output is calibrated."""
    out = tmp_path_factory.mktemp("calibrated-raw")
    with one_thread():
        result = CliRunner().invoke(
            app, ["onnx", str(calibrated_checkpoint), "--raw", "--out", str(out), "--limit", "20"]
        )
    assert result.exit_code == 0, result.output
    return out / "cnn.raw.onnx"
