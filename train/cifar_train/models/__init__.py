"""Model registry: architecture name -> constructor. Filled by the @register decorator."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

MODELS: dict[str, Callable[..., nn.Module]] = {}


def register(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Add a model constructor to MODELS under `name`."""

    def add(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        MODELS[name] = fn
        return fn

    return add


def create_model(arch: str, num_classes: int = 10) -> nn.Module:
    """Build an architecture with freshly initialised weights (pretrained weights are loaded separately)."""
    if arch not in MODELS:
        raise KeyError(f"unknown architecture {arch!r}; known: {', '.join(sorted(MODELS))}")
    return MODELS[arch](num_classes=num_classes)


# Importing the modules fills the registry.
from cifar_train.models import cnn, resnet  # noqa: E402, F401
