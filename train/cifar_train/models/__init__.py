"""Model registry: one ModelSpec per architecture, filled by the @register decorator beside each model.

A spec is everything the rest of the tree may know about an architecture (in the spirit of torchvision's
`Weights`): how to build it, what it eats (input size, mean/std, resize rule), its per-sample augmentation, how
pretrained weights load, and the published figure it is compared with. Nothing outside this package branches on
an architecture's name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from torch import nn
from torchvision.transforms import v2

CIFAR_HALF = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))  # the seed CNN's Normalize
IMAGENET_MEAN_STD = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))  # torchvision's ImageNet weights
CIFAR_MEAN_STD = ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))  # CIFAR-10 train set statistics


@dataclass(frozen=True)
class Reference:
    """A published accuracy this architecture is compared with."""

    test_acc: float  # percent, CIFAR-10 test set
    source: str  # where the figure comes from
    note: str = ""  # what is known of it on this project's JPEG copy of CIFAR-10


@dataclass(frozen=True)
class ModelSpec:
    name: str
    build: Callable[[int], nn.Module]  # num_classes -> freshly initialised model
    input_size: int  # square side in pixels the network takes; CIFAR images are resized to it when different
    mean: tuple[float, float, float]  # per-channel RGB, on the 0..1 scale
    std: tuple[float, float, float]
    summary: str
    head: str  # name of the classifier module: its parameters are the "head" for --backbone-lr-scale
    augment: Callable[[int], list[v2.Transform]] = lambda size: []  # per-sample train augmentation on uint8
    load_pretrained: Callable[[nn.Module, Path | None], None] | None = None  # (model, local file or None)
    reference: Reference | None = None

    def resize(self, size: int | None = None) -> list[v2.Transform]:
        """Resize (bilinear, antialiased) from CIFAR's 32x32 to the input size; nothing when they agree."""
        size = size or self.input_size
        return [v2.Resize((size, size), antialias=True)] if size != 32 else []


MODELS: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
    """Add an architecture to MODELS under spec.name."""
    MODELS[spec.name] = spec
    return spec


def get_spec(arch: str) -> ModelSpec:
    if arch not in MODELS:
        raise KeyError(f"unknown architecture {arch!r}; known: {', '.join(sorted(MODELS))}")
    return MODELS[arch]


def create_model(arch: str, num_classes: int = 10) -> nn.Module:
    """Build an architecture with freshly initialised weights (pretrained weights are loaded separately)."""
    return get_spec(arch).build(num_classes)


def _register_all() -> None:
    """Import every module of this package: each registers its spec, so a new architecture is one new file."""
    import importlib
    import pkgutil

    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")


_register_all()
