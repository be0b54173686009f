from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
CIFAR_FIXTURE = FIXTURES / "cifar10"  # real CIFAR-10 JPEGs: train/ 20 per class, test/ 30 per class


@pytest.fixture(scope="session")
def cifar_fixture() -> Path:
    return CIFAR_FIXTURE
