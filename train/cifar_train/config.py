"""One frozen config per recipe. The seed's published values are the defaults; every field is a CLI flag."""

from __future__ import annotations

from dataclasses import dataclass

CIFAR_MEAN_STD = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))  # the seed CNN's Normalize
IMAGENET_MEAN_STD = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))  # torchvision's ImageNet weights


@dataclass(frozen=True)
class TrainConfig:
    arch: str = "cnn"  # a key of cifar_train.models.MODELS
    # recipe
    epochs: int = 30
    batch_size: int = 64  # per process; the global batch under torchrun is batch_size * world_size
    lr: float = 1e-3  # Adam
    step_size: int = 10  # StepLR period in epochs; 0 = constant lr
    gamma: float = 0.5  # StepLR decay factor
    image_size: int = 32  # network input side in pixels; images are resized to it when different
    # data
    data: str = ""  # ImageFolder root with train/ and test/, or a torchvision CIFAR-10 root
    download: bool = False  # fetch CIFAR-10 through torchvision (needs internet)
    val_size: int = 5000  # images held out of train, stratified; 0 = select on test as the seed did
    split_seed: int = 0  # the validation split does not move with --seed
    workers: int = 0  # DataLoader worker processes
    # model
    pretrained: bool = False  # ResNet18: start from ImageNet weights
    weights: str = ""  # ResNet18: local state dict to start from instead of torchvision's cache
    # run
    out: str = "runs/cnn"
    seed: int = 0
    deterministic: bool = False  # torch.use_deterministic_algorithms + cuDNN determinism
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    amp: bool = True  # mixed precision (float16 autocast) on CUDA; CPU always runs fp32
    channels_last: bool = False  # memory format for conv layers


RECIPES: dict[str, TrainConfig] = {
    # Seed 1: custom CNN from scratch, reported 89.11% test accuracy.
    "cnn": TrainConfig(arch="cnn", epochs=30, batch_size=64, lr=1e-3, step_size=10, gamma=0.5, image_size=32),
    # Seed 2: ImageNet ResNet18, layer4 + fc fine-tuned at 224x224, reported 91.95% test accuracy.
    "resnet18": TrainConfig(
        arch="resnet18", epochs=10, batch_size=64, lr=1e-4, step_size=0, image_size=224,
        pretrained=True, out="runs/resnet18",
    ),
}


def mean_std(arch: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The normalisation each recipe trains with."""
    return IMAGENET_MEAN_STD if arch == "resnet18" else CIFAR_MEAN_STD
