"""A recipe's config shrunk to the fixture: a plain module (not conftest) that the train tests import."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from cifar_train import RECIPES, TrainConfig


def fast_config(data: Path, out: Path, recipe: str = "fast", **changes: object) -> TrainConfig:
    """`recipe` on the fixture: small batches, so that a few hundred images make several steps per epoch."""
    base = dict(
        data=str(data),
        out=str(out),
        val_size=50,
        batch_size=32,
        micro_batch=16,
        device="cpu",
        epochs=4,
        lookahead_start=1,
        lookahead_every=2,
        whiten_bias_epochs=2,
    )
    return replace(RECIPES[recipe].config, **{**base, **changes})
