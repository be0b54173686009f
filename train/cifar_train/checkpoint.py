"""The one save and one load for checkpoints. Content is weights_only-safe: tensors, numbers, strings, lists.

A checkpoint is a dict (build_checkpoint makes it):
  model                                 the model's state dict
  arch, classes, mean, std, input_size  what any script needs to rebuild and feed the model
  dataset                               what the data is (cifar_train.dataset.DatasetInfo), None for fixtures
  config                                asdict(TrainConfig): how it was made
  metrics                               val/test figures of this epoch's model
  epoch, history                        epochs completed, per-epoch rows so far
  best_score, best_epoch                the selection so far
last.pt adds what resuming needs (best.pt leaves it out: it is for using, not resuming):
  optimizer, scheduler, scaler          state dicts
  lookahead                             the weight average, when the recipe uses one (else None)
  rng                                   {"torch": ByteTensor}
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from cifar_runtime.atomic import write_atomically
from cifar_train.errors import UserError
from cifar_train.models import CIFAR_MEAN_STD, create_model, get_spec

if TYPE_CHECKING:
    from cifar_train.config import TrainConfig
    from cifar_train.dataset import DatasetInfo


def atomic_write(path: Path, write: Any) -> None:
    """Call write(tmp_path), then fsync and rename tmp over path: the repository's one atomic write
    (cifar_runtime.atomic), so readers see the old file or the new, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, write)


def ensure_writable(folder: Path) -> None:
    """Create `folder` and prove a file can be written there, before any slow work starts."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise UserError(f"cannot write to {folder} ({e.strerror or e}): pass --out with a writable folder") from e


TRAINING_STATE = ("optimizer", "scheduler", "scaler", "lookahead", "rng")


def build_checkpoint(
    model: nn.Module,
    config: dict[str, Any],
    classes: list[str],
    *,
    dataset: DatasetInfo | None = None,
    metrics: dict[str, Any] | None = None,
    epoch: int = 0,
    history: list[dict] | None = None,
    best_score: float = -1.0,
    best_epoch: int | None = None,
    training_state: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The one place a checkpoint dict is assembled (training, bench and test fixtures alike). Without a `dataset`
    (fixtures, timing runs), the normalisation is the architecture's own or CIFAR-10's."""
    spec = get_spec(config["arch"])
    size = config.get("image_size") or spec.input_size
    mean, std = (dataset.mean, dataset.std) if dataset else (spec.normalisation or CIFAR_MEAN_STD)
    return {
        "model": model.state_dict(),
        "arch": spec.name,
        "classes": list(classes),
        "mean": list(mean),
        "std": list(std),
        "input_size": [size, size],
        "dataset": dataset.to_json() if dataset else None,
        "config": config,
        "metrics": metrics or {},
        "epoch": epoch,
        "history": history or [],
        "best_score": best_score,
        "best_epoch": best_epoch,
        **(training_state or {}),
    }


def without_training_state(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """The checkpoint minus what only resuming needs: a third of the size for the CNN (no Adam moments)."""
    return {k: v for k, v in checkpoint.items() if k not in TRAINING_STATE}


def save_checkpoint(path: Path, checkpoint: dict[str, Any]) -> None:
    atomic_write(path, lambda tmp: torch.save(checkpoint, tmp))


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint written by save_checkpoint, refusing pickled code (weights_only=True)."""
    path = Path(path)
    if path.is_dir():
        inside = "" if not (path / "best.pt").is_file() else f", e.g. {path / 'best.pt'}"
        raise UserError(f"{path} is a folder, not a checkpoint: pass the .pt file of a cifar-train run{inside}")
    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises a zoo of types for truncated / foreign files
        raise UserError(f"cannot read checkpoint {path} ({type(e).__name__}): is it a cifar-train .pt file?") from e
    missing = [k for k in ("model", "arch", "classes", "mean", "std", "input_size") if k not in ckpt]
    if not isinstance(ckpt, dict) or missing:
        raise UserError(f"{path} is not a cifar-train checkpoint (missing {', '.join(missing) or 'everything'})")
    return ckpt


def model_from_checkpoint(ckpt: dict[str, Any]) -> nn.Module:
    """Rebuild the checkpoint's architecture, load its weights, and return it in eval mode on the CPU."""
    try:
        model = create_model(ckpt["arch"], num_classes=len(ckpt["classes"]))
    except KeyError as e:
        raise UserError(f"checkpoint of {e.args[0]}") from e  # "unknown architecture 'x'; known: ..."
    try:
        model.load_state_dict(ckpt["model"])
    except (KeyError, RuntimeError) as e:
        raise UserError(f"checkpoint weights do not fit architecture {ckpt['arch']!r}: {_mismatch(model, ckpt)}") from e
    return model.eval()


def config_from_checkpoint(ckpt: dict[str, Any], data: str) -> TrainConfig:
    """The checkpoint's TrainConfig (fields it predates take their defaults), reading its data from `data`."""
    from cifar_train.config import TrainConfig

    known = {f.name for f in fields(TrainConfig)}
    saved = {k: v for k, v in (ckpt.get("config") or {}).items() if k in known}
    return replace(TrainConfig(**saved), data=data, download=False)


def _mismatch(model: nn.Module, ckpt: dict[str, Any]) -> str:
    """What differs between a model's state dict and a checkpoint's, in one line (torch's message spans many)."""
    if "model" not in ckpt or not isinstance(ckpt["model"], dict):
        return "the checkpoint holds no state dict under 'model'"
    want, have = model.state_dict(), ckpt["model"]
    missing, unexpected = sorted(set(want) - set(have)), sorted(set(have) - set(want))
    sized = [
        f"{k} {tuple(have[k].shape)} where the net has {tuple(want[k].shape)}"
        for k in want
        if k in have and hasattr(have[k], "shape") and have[k].shape != want[k].shape
    ]
    parts = [
        f"{len(missing)} weights missing (e.g. {missing[0]})" if missing else "",
        f"{len(unexpected)} unexpected (e.g. {unexpected[0]})" if unexpected else "",
        f"{len(sized)} of another shape (e.g. {sized[0]})" if sized else "",
    ]
    return "; ".join(p for p in parts if p) + ": was it trained with another --arch or number of classes?"


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
