"""torchvision ResNets with a 10-way head for transfer at 224x224; only `layer4` and `fc` train (the seed's
transfer recipe; `--unfreeze layer3` opens more). ResNet18 is the seed's; 34 and 50 are the same recipe deeper.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch
from torch import nn
from torchvision.models import (
    ResNet18_Weights,
    ResNet34_Weights,
    ResNet50_Weights,
    WeightsEnum,
    resnet18,
    resnet34,
    resnet50,
)
from torchvision.transforms import v2

from cifar_train.errors import UserError
from cifar_train.models import IMAGENET_MEAN_STD, ModelSpec, Reference, register

TRAINABLE_PREFIXES = ("layer4.", "fc.")


def resnet_cifar(constructor: Callable[..., nn.Module], num_classes: int = 10) -> nn.Module:
    model = constructor(weights=None)
    model.fc = nn.Linear(model.fc.in_features, num_classes)  # 512 (18, 34) or 2048 (50) -> num_classes
    freeze_all_but_head(model)
    return model


def freeze_all_but_head(model: nn.Module) -> None:
    """Freeze every parameter except those of layer4 and fc."""
    for name, p in model.named_parameters():
        p.requires_grad = name.startswith(TRAINABLE_PREFIXES)


def imagenet_cache_path(weights: WeightsEnum) -> Path:
    """Where torchvision's weights enum keeps the ImageNet file (under $TORCH_HOME/hub/checkpoints)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / weights.url.rsplit("/", 1)[-1]


def check_pretrained(weights: WeightsEnum, name: str, weights_file: Path | None) -> None:
    """UserError, before any data is read, when the weights to start from are not on this machine."""
    if weights_file is not None and not weights_file.is_file():
        raise UserError(f"--weights {weights_file} does not exist")
    cached = imagenet_cache_path(weights)
    if weights_file is None and not cached.is_file():
        raise UserError(
            f"ImageNet weights for {name} are not in the torch cache ({cached}). Download "
            f"{weights.url} there (or set TORCH_HOME), pass --weights FILE, "
            "or --no-pretrained to start from random weights"
        )


def load_pretrained(weights: WeightsEnum, name: str, model: nn.Module, weights_file: Path | None) -> None:
    """Load ImageNet (or user-provided) weights into the backbone; the 10-way fc keeps its init unless given."""
    if weights_file is None:
        check_pretrained(weights, name, None)
        state = weights.get_state_dict(progress=False, check_hash=True)
    else:
        try:
            state = torch.load(weights_file, map_location="cpu", weights_only=True)
        except Exception as e:  # torch raises many types for a file that is not a checkpoint
            raise UserError(
                f"cannot load weights file {weights_file} ({type(e).__name__}): give a {name} "
                "state dict or a cifar-train checkpoint"
            ) from e
        if not isinstance(state, dict):
            raise UserError(f"weights file {weights_file} holds a {type(state).__name__}, not a state dict")
        state = state.get("model", state)  # accept a cifar-train checkpoint as well as a bare state dict
    fc_shape = tuple(model.fc.weight.shape)
    if tuple(state.get("fc.weight", torch.empty(0)).shape) != fc_shape:
        # An ImageNet head (1000 classes) does not fit: keep our freshly initialised 10-way fc.
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith("fc.")]
    if missing or unexpected:
        raise UserError(f"weights file does not fit {name}: missing {missing[:3]}, unexpected {unexpected[:3]}")


def transfer_augment(size: int) -> list[v2.Transform]:
    """The seed's transfer augmentation: upscale to size (32 -> 224 for CIFAR), horizontal flip."""
    return [v2.Resize((size, size), antialias=True), v2.RandomHorizontalFlip()]


for _name, _constructor, _weights, _reference in (
    (
        "resnet18",
        resnet18,
        ResNet18_Weights.IMAGENET1K_V1,
        Reference(91.95, "seed pipeline 2 (ImageNet ResNet18, layer4 + fc, 10 epochs), lossless CIFAR-10"),
    ),
    ("resnet34", resnet34, ResNet34_Weights.IMAGENET1K_V1, None),
    ("resnet50", resnet50, ResNet50_Weights.IMAGENET1K_V1, None),
):
    register(
        ModelSpec(
            name=_name,
            build=partial(resnet_cifar, _constructor),
            input_size=224,
            min_size=32,  # five halvings: 32 -> 1
            normalisation=IMAGENET_MEAN_STD,  # what the ImageNet weights were trained with
            augment=transfer_augment,
            resize_on_the_fly=True,
            load_pretrained=partial(load_pretrained, _weights, _name),
            check_pretrained=partial(check_pretrained, _weights, _name),
            head="fc",
            summary=f"torchvision {_name}, ImageNet weights, only layer4 + fc trainable, 224x224 input",
            reference=_reference,
        )
    )
