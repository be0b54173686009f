"""Whole-batch augmentation on in-memory uint8 images (airbench's loader): no per-sample Python, no workers."""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F


def epoch_seed(seed: int, epoch: int, rank: int) -> int:
    """Every epoch (and rank) draws from its own seed, so a resumed run replays what an unbroken one would."""
    return seed * 1_000_000 + rank * 1_000 + epoch


def normalize(images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 (B, 3, H, W) -> float32 (x / 255 - mean) / std."""
    return (images.float() / 255 - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)


def translate(images: torch.Tensor, shifts: torch.Tensor, r: int) -> torch.Tensor:
    """Shift each image by shifts[i] = (dy, dx) in [-r, r] pixels, filling with the reflection of its border."""
    b, c, h, w = images.shape
    padded = F.pad(images, (r, r, r, r), mode="reflect")  # (B, C, H+2r, W+2r)
    rows = torch.empty(b, c, h, w + 2 * r, dtype=images.dtype)
    for s in range(-r, r + 1):  # two passes of 2r+1 masked copies instead of (2r+1)^2
        m = shifts[:, 0] == s
        rows[m] = padded[m, :, r + s : r + s + h, :]
    out = torch.empty_like(images)
    for s in range(-r, r + 1):
        m = shifts[:, 1] == s
        out[m] = rows[m, :, :, r + s : r + s + w]
    return out


def cutout(images: torch.Tensor, size: int, g: torch.Generator) -> torch.Tensor:
    """Zero a size x size square (clipped at the border) centred at a random pixel of each image: rows and
    columns [c - size // 2, c - size // 2 + size)."""
    b, _, h, w = images.shape
    top = torch.randint(0, h, (b, 1, 1), generator=g) - size // 2
    left = torch.randint(0, w, (b, 1, 1), generator=g) - size // 2
    ys, xs = torch.arange(h).view(1, h, 1), torch.arange(w).view(1, 1, w)
    inside = (ys >= top) & (ys < top + size) & (xs >= left) & (xs < left + size)  # (B, H, W)
    return images.masked_fill(inside.unsqueeze(1), 0.0)


class BatchAugmentLoader:
    """One epoch of shuffled (x, y) batches: x (B, 3, H, W) float32 normalised and augmented, y (B,) int64; with
    `soft` (N, C) targets (distillation), (x, y, soft) batches."""

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        batch_size: int,
        epoch: int,
        seed: int,
        flip: str = "none",
        translate: int = 0,
        cutout: int = 0,
        rank: int = 0,
        world_size: int = 1,
        soft: torch.Tensor | None = None,
    ) -> None:
        self.images, self.labels, self.soft = images, labels, soft  # (N, 3, H, W) uint8, (N,), (N, C) or None
        self.mean, self.std = torch.tensor(mean), torch.tensor(std)
        self.batch_size, self.flip, self.shift, self.cutout = batch_size, flip, translate, cutout
        self.g = torch.Generator().manual_seed(epoch_seed(seed, epoch, rank))
        # The order is shared by all ranks (each takes every world_size-th image); remainders are dropped.
        order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(epoch_seed(seed, epoch, 0)))
        self.order = order[rank::world_size]
        if flip == "alternate":
            # Each image has a fixed random parity for the whole run; it is mirrored on epochs of that parity, so
            # consecutive epochs always see both orientations (the airbench paper's alternating flip).
            parity = torch.rand(len(labels), generator=torch.Generator().manual_seed(seed)) < 0.5
            self.flipped = parity ^ bool(epoch % 2)
        elif flip == "random":
            self.flipped = torch.rand(len(labels), generator=self.g) < 0.5
        else:
            self.flipped = torch.zeros(len(labels), dtype=torch.bool)

    def __len__(self) -> int:
        return len(self.order) // self.batch_size

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        for i in range(len(self)):
            idx = self.order[i * self.batch_size : (i + 1) * self.batch_size]
            x = normalize(self.images[idx], self.mean, self.std)
            flip = self.flipped[idx].view(-1, 1, 1, 1)
            x = torch.where(flip, x.flip(-1), x)
            if self.shift:
                shifts = torch.randint(-self.shift, self.shift + 1, (len(idx), 2), generator=self.g)
                x = translate(x, shifts, self.shift)
            if self.cutout:
                x = cutout(x, self.cutout, self.g)
            yield (x, self.labels[idx]) if self.soft is None else (x, self.labels[idx], self.soft[idx])
