"""Your own images: a real dataset that is not CIFAR-10 (scikit-learn's 8x8 grayscale digits, 10 classes), in
ImageFolder layout with mixed image modes and sizes, through the whole path: train with the recipes' defaults,
export with parity on its own images, classify with cifar-infer, build the web page, write the card."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from digits import TEST_IMAGES, write_digits
from PIL import Image
from typer.testing import CliRunner

from cifar_export.cli import app as export_app
from cifar_runtime.cli import app as infer_app
from cifar_train.cli import app as train_app


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_digits(tmp_path_factory.mktemp("digits"))


def run(app, args: list[str]):  # noqa: ANN001, ANN201
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return result


def test_the_whole_path_on_digits(digits: Path, tmp_path: Path) -> None:
    out = tmp_path / "fast"
    run(train_app, ["fast", "--data", str(digits), "--out", str(out), "--epochs", "4", "--device", "cpu"])
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test_acc"] > 0.8  # a sensible accuracy after 4 epochs
    dataset = metrics["dataset"]
    assert dataset["classes"] == [f"digit-{d}" for d in range(10)] and dataset["input_size"] == [32, 32]
    assert set(dataset["sizes"]) == {"8x8", "12x12"}  # mixed sizes, each resized to the input size
    assert len(dataset["mean"]) == 3 and dataset["mean"] != [0.4914, 0.4822, 0.4465]  # its own statistics
    assert metrics["config"]["batch_size"] < 1024  # scaled to 1,497 images, and said so

    run(export_app, ["onnx", str(out / "best.pt"), "--tta", "0"])  # parity on the run's own test images
    report = json.loads((out / "airbench94.onnx.parity.json").read_text())
    assert report["published"] and report["parity"]["images"].endswith("test")
    assert report["parity"]["rows"][0]["images"] == TEST_IMAGES

    rows = run(infer_app, ["--model", str(out / "airbench94.onnx"), str(digits / "test"), "-f", "jsonl"]).stdout
    rows = [json.loads(line) for line in rows.splitlines()]
    assert len(rows) == TEST_IMAGES and {r["label"] for r in rows} <= {f"digit-{d}" for d in range(10)}
    right = np.mean([r["label"] == Path(r["path"]).parent.name for r in rows])
    assert right > 0.75

    run(export_app, ["onnx", str(out / "best.pt"), "--raw", "--tta", "0"])
    card = run(export_app, ["card", str(out)])
    text = (out / "MODEL_CARD.md").read_text()
    assert "CIFAR" not in text.split("## Reproduce")[0] and "digit-0" in text, card.output
    assert "lossless" not in text and "(above)" not in text  # no reference columns, no OOD figures it lacks


def test_the_seed_cnn_takes_them_too(digits: Path, tmp_path: Path) -> None:
    run(train_app, ["cnn", "--data", str(digits), "--out", str(tmp_path), "--epochs", "2", "--device", "cpu"])
    assert json.loads((tmp_path / "metrics.json").read_text())["test_acc"] > 0.3


def test_an_input_below_the_architectures_minimum_is_one_line(digits: Path, tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "cifar_train",
            "fast",
            "--data",
            str(digits),
            "--out",
            str(tmp_path),
            "--image-size",
            "8",
            "--device",
            "cpu",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "airbench94 takes images of at least 9x9 pixels" in done.stderr and "--image-size" in done.stderr


def test_cifar_10_keeps_every_number_it_had(cifar_fixture: Path) -> None:
    """What adapting to any data changed is an identity on CIFAR-10: global pooling equals the old fixed pooling at
    32x32, the decode equals Pillow's RGB conversion, the statistics are the published ones, no recipe is refitted."""
    import torch

    from cifar_train import RECIPES, create_model
    from cifar_train.data import build_datasets, fit_to_data
    from cifar_train.images import _decode
    from cifar_train.models import CIFAR_HALF, CIFAR_MEAN_STD

    x = torch.randn(4, 3, 32, 32)
    air = create_model("airbench94").eval()
    with torch.no_grad():
        h = air.group3(air.group2(air.group1(air.activ(air.whiten(x)))))  # (4, 256, 3, 3)
        assert torch.equal(air.pool(h), torch.nn.MaxPool2d(3)(h))  # the layer it replaced
        cnn = create_model("cnn").eval()
        assert torch.equal(cnn.features(x), cnn.features[:-1](x))  # the added pooling is an identity at 32x32
    for path in sorted((cifar_fixture / "test").rglob("*.jpg"))[:50]:
        with Image.open(path) as im:
            assert np.array_equal(_decode(path, None), np.asarray(im.convert("RGB")))
    for recipe in RECIPES.values():
        assert fit_to_data(recipe.config, 50_000, 10, print) == recipe.config
    for arch, stats in (("airbench94", CIFAR_MEAN_STD), ("cnn", CIFAR_HALF)):
        cfg = RECIPES["fast" if arch == "airbench94" else "cnn"].config
        data, _ = build_datasets(replace(cfg, data=str(cifar_fixture), val_size=50, batch_size=16), print)
        assert (data.info.mean, data.info.std) == stats and data.info.name == "CIFAR-10"
