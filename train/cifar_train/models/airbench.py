"""A net built for fast CIFAR-10 training, after KellerJordan/cifar10-airbench (airbench94, 94.01% in 9.9 epochs).

Shape of the net: a 2x2 patch-whitening conv, then three groups of (conv, max-pool, BN, GELU, conv, BN, GELU)
and a linear head whose logits are scaled down. Per image airbench94 costs about what the seed CNN costs
(0.12 GMAC); airbench95's wider groups cost 0.30 GMAC (4.6M parameters against 2.0M).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from cifar_train.models import ModelSpec, Reference, register

WHITEN_KERNEL = 2  # the whitening conv sees 2x2 patches: 3 * 2 * 2 = 12 dimensions
WHITEN_WIDTH = 2 * 3 * WHITEN_KERNEL**2  # each whitening direction and its negative: 24 channels


def batch_norm(channels: int) -> nn.BatchNorm2d:
    # momentum 0.4 in torch's convention (airbench's 0.6 running-average weight); tiny eps as in the reference.
    return nn.BatchNorm2d(channels, eps=1e-12, momentum=0.4)


def conv3x3(c_in: int, c_out: int) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, bias=False)


class ConvGroup(nn.Module):
    """(B, c_in, H, W) -> (B, c_out, H/2, W/2)."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv1, self.pool, self.norm1 = conv3x3(c_in, c_out), nn.MaxPool2d(2), batch_norm(c_out)
        self.conv2, self.norm2 = conv3x3(c_out, c_out), batch_norm(c_out)
        self.activ = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.activ(self.norm1(self.pool(self.conv1(x))))
        return self.activ(self.norm2(self.conv2(x)))


class AirbenchNet(nn.Module):
    """Input (B, 3, H, W), H and W at least 9, normalised with the data's mean/std; output (B, num_classes) logits.
    Shapes below are for 32x32 inputs."""

    def __init__(
        self, num_classes: int = 10, widths: tuple[int, int, int] = (64, 256, 256), logit_scale: float = 1 / 9
    ) -> None:
        super().__init__()
        self.whiten = nn.Conv2d(3, WHITEN_WIDTH, kernel_size=WHITEN_KERNEL, padding=0, bias=True)
        self.activ = nn.GELU()
        self.group1 = ConvGroup(WHITEN_WIDTH, widths[0])
        self.group2 = ConvGroup(widths[0], widths[1])
        self.group3 = ConvGroup(widths[1], widths[2])
        self.pool = nn.AdaptiveMaxPool2d(1)  # the 3x3 map of 32x32 inputs, any map of larger ones
        self.head = nn.Linear(widths[2], num_classes, bias=False)
        self.logit_scale = logit_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.activ(self.whiten(x))  # (B, 24, 31, 31)
        x = self.group1(x)  # (B, w0, 15, 15)
        x = self.group2(x)  # (B, w1, 7, 7)
        x = self.group3(x)  # (B, w2, 3, 3)
        x = self.pool(x).flatten(1)  # (B, w2): the max over the whole map
        return self.head(x) * self.logit_scale  # (B, num_classes)

    @torch.no_grad()
    def init_whitening(self, images: torch.Tensor, eps: float = 5e-4) -> None:
        """Set the first conv to whiten 2x2 patches of `images` ((N, 3, H, W), normalised) and freeze its weight.

        Each filter is an eigenvector of the patch covariance divided by sqrt(eigenvalue), paired with its negative
        so that the GELU after it keeps both signs.
        """
        k = WHITEN_KERNEL
        patches = images.float().unfold(2, k, 1).unfold(3, k, 1)  # (N, 3, H-1, W-1, k, k)
        patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, 3 * k * k)  # (P, 12)
        covariance = patches.T @ patches / len(patches)  # (12, 12)
        eigenvalues, eigenvectors = torch.linalg.eigh(covariance)  # ascending
        filters = (eigenvectors.T / torch.sqrt(eigenvalues[:, None] + eps)).flip(0).reshape(-1, 3, k, k)
        self.whiten.weight.copy_(torch.cat([filters, -filters]))
        self.whiten.weight.requires_grad = False


def airbench94(num_classes: int = 10) -> nn.Module:
    return AirbenchNet(num_classes)


def airbench95(num_classes: int = 10) -> nn.Module:
    return AirbenchNet(num_classes, widths=(128, 384, 384))


def _spec(name: str, build: Callable[[int], nn.Module], summary: str, reference: Reference) -> ModelSpec:
    """The spec both widths share: 32-pixel input (9 at the least), the data's own normalisation, head `head`."""
    # min_size 9: the 2x2 whitening conv takes a pixel, then each of three groups halves: 9 -> 8 -> 4 -> 2 -> 1
    return ModelSpec(
        name=name, build=build, input_size=32, min_size=9, head="head", summary=summary, reference=reference
    )


AIRBENCH = "KellerJordan/cifar10-airbench"
register(
    _spec(
        "airbench94",
        airbench94,
        "airbench94's net: 2x2 whitening conv + three conv groups 64/256/256",
        Reference(94.01, f"{AIRBENCH} airbench94.py: mean of 1,000 runs, lossless CIFAR-10"),
    )
)
register(
    _spec(
        "airbench95",
        airbench95,
        "airbench95's net: airbench94's, wider (conv groups 128/384/384), ~2.5x its cost per image",
        Reference(95.01, f"{AIRBENCH} airbench95.py: mean of 200 runs, 15 epochs, lossless CIFAR-10"),
    )
)
