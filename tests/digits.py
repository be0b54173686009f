"""A real dataset that is not CIFAR-10, built offline: scikit-learn's 1,797 8x8 grayscale digits (shipped in its
wheel), in ImageFolder layout with mixed modes and sizes, as a user's own folder would be."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

TEST_IMAGES = 300


def write_digits(root: Path) -> Path:
    """`root/{train,test}/digit-N/*.png`, 300 held out for test; one image in ten saved as a palette PNG, one in ten
    as RGB, one in ten enlarged to 12x12 (the rest 8x8 grayscale). Returns `root`."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    test = set(np.random.default_rng(0).permutation(len(digits.target))[:TEST_IMAGES])
    for i, (pixels, label) in enumerate(zip(digits.images, digits.target, strict=True)):
        folder = root / ("test" if i in test else "train") / f"digit-{label}"
        folder.mkdir(parents=True, exist_ok=True)
        img = Image.fromarray(np.round(pixels * 255 / 16).astype(np.uint8), mode="L")
        img = {0: img.convert("P"), 1: img.convert("RGB"), 2: img.resize((12, 12), Image.Resampling.BILINEAR)}.get(
            i % 10, img
        )
        img.save(folder / f"{i:04d}.png")
    return root
