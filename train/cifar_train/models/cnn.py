"""The seed's custom CNN: five 3x3 convs with BatchNorm, three max-pools, two linear layers."""

from __future__ import annotations

from torch import nn
from torchvision.transforms import v2

from cifar_train.models import CIFAR_HALF, ModelSpec, Reference, register


def conv_bn_relu(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, kernel_size=3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


class SeedCNN(nn.Module):
    """Input (B, 3, H, W), H and W at least 8, normalised with mean/std 0.5; output (B, num_classes) logits.
    Shapes below are for 32x32 inputs."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            *conv_bn_relu(3, 64),  # (B, 64, 32, 32)
            *conv_bn_relu(64, 64),
            nn.MaxPool2d(2),  # (B, 64, 16, 16)
            *conv_bn_relu(64, 128),  # (B, 128, 16, 16)
            *conv_bn_relu(128, 128),
            nn.MaxPool2d(2),  # (B, 128, 8, 8)
            *conv_bn_relu(128, 256),  # (B, 256, 8, 8)
            nn.MaxPool2d(2),  # (B, 256, 4, 4)
            # The map the head was built for, from any input size; an identity at 32x32 (the seed's).
            nn.AdaptiveAvgPool2d(4),  # (B, 256, 4, 4)
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),  # (B, 4096)
            nn.Linear(256 * 4 * 4, 512),
            nn.ReLU(inplace=True),
            nn.Dropout(0.5),
            nn.Linear(512, num_classes),  # (B, num_classes)
        )

    def forward(self, x):
        return self.classifier(self.features(x))


def seed_augment(size: int) -> list[v2.Transform]:
    """The seed's per-sample augmentation: padded random crop, horizontal flip, brightness/contrast jitter."""
    return [v2.RandomCrop(size, padding=4), v2.RandomHorizontalFlip(), v2.ColorJitter(brightness=0.2, contrast=0.2)]


SPEC = register(
    ModelSpec(
        name="cnn",
        build=SeedCNN,
        input_size=32,
        min_size=8,  # three max-pools of 2 leave one pixel
        normalisation=CIFAR_HALF,  # the seed's Normalize(0.5, 0.5), whatever the data
        augment=seed_augment,
        head="classifier",
        summary="the seed's 5-conv CNN with BatchNorm",
        reference=Reference(
            89.11,
            "seed pipeline 1 (custom CNN, 30 epochs, Adam), lossless CIFAR-10",
            "the seed's exact pipeline reached about 85% on the JPEG copy after 25 of 30 epochs",
        ),
    )
)
