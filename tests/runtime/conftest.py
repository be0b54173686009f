"""Fixtures for the runtime tests: the tiny ONNX model, real CIFAR JPEGs, and folders of awkward files.

Nothing here may import torch, torchvision or onnx: these tests must pass where they are not installed.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image
from runtime_files import TINY, bad_images, unusual_images

from cifar_runtime import Classifier


@pytest.fixture(scope="session")
def classifier() -> Classifier:
    return Classifier(TINY, device="cpu")


@pytest.fixture(scope="session")
def test_images(cifar_fixture: Path) -> list[Path]:
    """The 300 real CIFAR-10 test JPEGs of the fixture, in a fixed order."""
    return sorted((cifar_fixture / "test").rglob("*.jpg"))


@pytest.fixture(autouse=True)
def _no_model_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """A CIFAR_MODEL set in the developer's shell must not change what the tests load."""
    monkeypatch.delenv("CIFAR_MODEL", raising=False)


@pytest.fixture(scope="session")
def photo(test_images: list[Path]) -> Image.Image:
    with Image.open(test_images[0]) as img:
        return img.convert("RGB")


@pytest.fixture(scope="session")
def mixed_folder(tmp_path_factory: pytest.TempPathFactory, photo: Image.Image, test_images: list[Path]) -> Path:
    """good/ (unusual but valid images), bad/ (unreadable ones), and files the walk must ignore."""
    root = tmp_path_factory.mktemp("mixed")
    for name, data in unusual_images(photo).items():
        (root / "good").mkdir(exist_ok=True)
        (root / "good" / name).write_bytes(data)
    for name, data in bad_images(test_images[0].read_bytes()).items():
        (root / "bad").mkdir(exist_ok=True)
        (root / "bad" / name).write_bytes(data)
    (root / "notes.txt").write_text("not an image extension: skipped by the walk\n")
    (root / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    return root
