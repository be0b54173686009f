"""cifar-train: the seed CIFAR-10 pipelines and faster recipes, reproducible and resumable.

The names in __all__ are the package's public face; other packages import only these. They load lazily, so
`import cifar_train` (and `cifar-train --help`) does not pay for importing torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.2.0"

_PUBLIC = {
    # checkpoints
    "atomic_write": "checkpoint",
    "build_checkpoint": "checkpoint",
    "load_checkpoint": "checkpoint",
    "model_from_checkpoint": "checkpoint",
    "sha256_file": "checkpoint",
    "without_training_state": "checkpoint",
    "ensure_writable": "checkpoint",
    # models and recipes
    "MODELS": "models",
    "ModelSpec": "models",
    "get_spec": "models",
    "create_model": "models",
    "RECIPES": "config",
    "Recipe": "config",
    "TrainConfig": "config",
    "recipe_of": "config",
    "recipe_and_flags": "config",
    # the run record (metrics.json)
    "RunRecord": "record",
    "Timing": "record",
    "TestTimeAugmentation": "tta",
    "TTA_LEVELS": "tta",
    # reading images, and the eval transform
    "decode_images": "images",
    "decode_readable": "images",
    "scan_image_folder": "images",
    "split_dir": "images",
    "load_image_folder": "images",
    "eval_transform": "data",
    # confidence (numpy only)
    "accepted": "calibration",
    "expected_calibration_error": "calibration",
    "fit_temperature": "calibration",
    # errors
    "UserError": "errors",
}
__all__ = sorted(_PUBLIC) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'cifar_train' has no attribute {name!r}")
    return getattr(importlib.import_module(f"cifar_train.{_PUBLIC[name]}"), name)
