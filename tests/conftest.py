from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
# Real CIFAR-10 JPEGs (train/ 20 per class, test/ 30 per class), shipped inside the export package as its default
# parity and calibration images; tests read them from the checkout, so no package needs to be installed for them.
CIFAR_FIXTURE = Path(__file__).parents[1] / "export" / "cifar_export" / "samples" / "cifar10"


@pytest.fixture(scope="session")
def cifar_fixture() -> Path:
    return CIFAR_FIXTURE
