"""Tests that need an extra install (Chromium, npm packages, an old onnxruntime from PyPI) skip where it is missing,
and fail instead under CI (CI=true), so that a broken install cannot turn a check into a green skip."""

from __future__ import annotations

import os

import pytest


def missing(reason: str) -> None:
    """Skip the test for `reason`; under CI, fail it."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: a test that needs an extra must run, not skip)", pytrace=False)
    pytest.skip(reason, allow_module_level=True)
