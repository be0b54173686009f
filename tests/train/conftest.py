import shutil
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory, cifar_fixture: Path) -> Path:
    """A 4-train / 2-test images per class copy of the fixture, for the slow 224x224 ResNet18."""
    root = tmp_path_factory.mktemp("tiny")
    for split, n in (("train", 4), ("test", 2)):
        for class_dir in sorted((cifar_fixture / split).iterdir()):
            (root / split / class_dir.name).mkdir(parents=True)
            for f in sorted(class_dir.iterdir())[:n]:
                shutil.copy(f, root / split / class_dir.name / f.name)
    return root
