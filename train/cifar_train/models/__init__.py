"""Model registry: one ModelSpec per architecture, filled by the @register decorator beside each model.

A spec is everything the rest of the tree may know about an architecture (in the spirit of torchvision's
`Weights`): how to build it, the input sizes it takes, the normalisation its weights assume (if any: otherwise the
data's own statistics apply, cifar_train.dataset), its per-sample augmentation, how pretrained weights load, and the
published figure it is compared with. What belongs to the data (classes, mean/std, sizes) is described once, beside
the weights, by cifar_train.dataset. Nothing outside this package branches on an architecture's name.
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


Normalisation = tuple[tuple[float, float, float], tuple[float, float, float]]  # (mean, std) per RGB channel, 0..1


@dataclass(frozen=True)
class ModelSpec:
    name: str
    build: Callable[[int], nn.Module]  # num_classes -> freshly initialised model
    input_size: int  # the square side its recipes train at (--image-size); any size from min_size up works
    min_size: int  # the smallest side the net takes (its pooling leaves at least one pixel)
    summary: str
    head: str  # name of the classifier module: its parameters are the "head" for --backbone-lr-scale
    # The normalisation the weights assume, whatever the data (pretrained weights, a published recipe's constant);
    # None: the dataset's own statistics (cifar_train.dataset)
    normalisation: Normalisation | None = None
    augment: Callable[[int], list[v2.Transform]] = lambda size: []  # per-sample train augmentation on uint8
    load_pretrained: Callable[[nn.Module, Path | None], None] | None = None  # (model, local file or None)
    check_pretrained: Callable[[Path | None], None] | None = None  # (local file or None): UserError if missing
    reference: Reference | None = None
    # Keep images at their stored size and resize per sample in the transforms (a 224x224 copy of 50,000 images
    # would take 7.5 GB); otherwise images are resized once, when they are decoded, as the runtime resizes them.
    resize_on_the_fly: bool = False

    def check_size(self, size: int) -> None:
        """UserError unless the net takes `size` x `size` images."""
        if size < self.min_size:
            from cifar_train.errors import UserError

            raise UserError(
                f"{self.name} takes images of at least {self.min_size}x{self.min_size} pixels: pass "
                f"--image-size {self.min_size} or more (images are resized to it)"
            )


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
