"""Test-time augmentation as a module, so that an exported graph carries it and every runtime gets it for free."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

TTA_LEVELS = {0: "none", 1: "mirror", 2: "mirror + 1-pixel translations"}


class TestTimeAugmentation(nn.Module):
    """Average the logits of several views of each image (airbench's weighting).

    level 1: the image and its mirror, 1/2 each. level 2: those two at 1/4 each, plus the mirrored pair of the
    image shifted one pixel up-left and one pixel down-right (reflect padding) at 1/8 each. Input and output are
    those of the wrapped model: (B, 3, H, W) -> (B, C).
    """

    def __init__(self, model: nn.Module, level: int) -> None:
        super().__init__()
        if level not in TTA_LEVELS:
            raise ValueError(f"TTA level must be one of {sorted(TTA_LEVELS)}, not {level}")
        self.model, self.level = model, level

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.level == 0:
            return self.model(x)
        views = [x, x.flip(3)]
        weights = [0.5, 0.5]
        if self.level == 2:
            padded = F.pad(x, (1, 1, 1, 1), mode="reflect")  # (B, 3, H+2, W+2)
            up_left, down_right = padded[:, :, :-2, :-2], padded[:, :, 2:, 2:]
            views += [up_left, up_left.flip(3), down_right, down_right.flip(3)]
            weights = [0.25, 0.25, 0.125, 0.125, 0.125, 0.125]
        logits = self.model(torch.cat(views))  # (V*B, C): one batched forward for all views
        logits = logits.view(len(views), x.shape[0], -1)  # (V, B, C)
        w = torch.tensor(weights, dtype=logits.dtype, device=logits.device).view(-1, 1, 1)
        return (logits * w).sum(0)
