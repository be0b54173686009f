"""The seed's custom CNN: five 3x3 convs with BatchNorm, three max-pools, two linear layers."""

from __future__ import annotations

from torch import nn

from cifar_train.models import register


def conv_bn_relu(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, kernel_size=3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


class SeedCNN(nn.Module):
    """Input (B, 3, 32, 32) normalised with mean/std 0.5; output (B, num_classes) logits."""

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


@register("cnn")
def cnn(num_classes: int = 10) -> nn.Module:
    return SeedCNN(num_classes)
