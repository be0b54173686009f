"""Modules that wrap a trained network for export, so that what they add is in the graph every runtime runs."""

from __future__ import annotations

import torch
from torch import nn


class TemperatureScaled(nn.Module):
    """(B, C) logits of `model` divided by the fitted temperature: softmax of them is the calibrated probability."""

    def __init__(self, model: nn.Module, temperature: float) -> None:
        super().__init__()
        self.model, self.scale = model, 1.0 / temperature
        self.train(model.training)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x) * self.scale


class RawInput(nn.Module):
    """uint8 (B, H, W, 3) RGB pixels -> (logits, softmax probabilities) of `model`, which takes normalised float32
    (B, 3, H, W). The arithmetic is the runtime's own (cifar_runtime.preprocess.normalize_batch), op for op in
    float32: x / 255, then (x - mean) / std; so a caller who only decodes and resizes gets the same logits."""

    def __init__(self, model: nn.Module, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))
        self.train(model.training)  # a new Module starts in train mode; exporting in it warns and can change ops

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = pixels.permute(0, 3, 1, 2).to(torch.float32) / 255  # (B, 3, H, W) in [0, 1]
        logits = self.model((x - self.mean) / self.std)
        return logits, torch.softmax(logits, dim=1)
