"""torchvision ResNet18 with a 10-way head; only `layer4` and `fc` train (the seed's transfer recipe)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torchvision.models import ResNet18_Weights, resnet18

from cifar_train.errors import UserError
from cifar_train.models import register

TRAINABLE_PREFIXES = ("layer4.", "fc.")


@register("resnet18")
def resnet18_cifar(num_classes: int = 10) -> nn.Module:
    model = resnet18(weights=None)
    model.fc = nn.Linear(model.fc.in_features, num_classes)  # 512 -> num_classes
    freeze_all_but_head(model)
    return model


def freeze_all_but_head(model: nn.Module) -> None:
    """Freeze every parameter except those of layer4 and fc."""
    for name, p in model.named_parameters():
        p.requires_grad = name.startswith(TRAINABLE_PREFIXES)


def imagenet_cache_path() -> Path:
    """Where torchvision's weights enum keeps the ImageNet ResNet18 file (under $TORCH_HOME/hub/checkpoints)."""
    url = ResNet18_Weights.IMAGENET1K_V1.url
    return Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]


def load_pretrained(model: nn.Module, weights_file: Path | None) -> None:
    """Load ImageNet (or user-provided) weights into the backbone; the 10-way fc keeps its init unless given."""
    if weights_file is None:
        cached = imagenet_cache_path()
        if not cached.is_file():
            raise UserError(
                f"ImageNet weights for ResNet18 are not in the torch cache ({cached}). Download "
                f"{ResNet18_Weights.IMAGENET1K_V1.url} there (or set TORCH_HOME), pass --weights FILE, "
                "or --no-pretrained to start from random weights"
            )
        state = ResNet18_Weights.IMAGENET1K_V1.get_state_dict(progress=False, check_hash=True)
    else:
        try:
            state = torch.load(weights_file, map_location="cpu", weights_only=True)
        except (OSError, RuntimeError) as e:
            raise UserError(f"cannot load weights file {weights_file}: {e}") from e
        state = state.get("model", state)  # accept a cifar-train checkpoint as well as a bare state dict
    fc_shape = tuple(model.fc.weight.shape)
    if tuple(state.get("fc.weight", torch.empty(0)).shape) != fc_shape:
        # An ImageNet head (1000 classes) does not fit: keep our freshly initialised 10-way fc.
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith("fc.")]
    if missing or unexpected:
        raise UserError(
            f"weights file does not fit ResNet18: missing {missing[:3]}, unexpected {unexpected[:3]}"
        )
