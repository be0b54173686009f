"""Optional TensorBoard event files (`--tensorboard`): loss, accuracy and learning rate per epoch, the recipe as
hyperparameters with the final figures. Offline: the files are written under --out/tensorboard."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cifar_train.errors import UserError


def check_tensorboard() -> None:
    """UserError unless torch's SummaryWriter can be imported (it needs the tensorboard package)."""
    try:
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except ImportError as e:
        raise UserError("--tensorboard needs the tensorboard package: pip install './train[tensorboard]'") from e


class TensorBoardLog:
    def __init__(self, folder: Path) -> None:
        check_tensorboard()
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(folder))

    def epoch(self, row: dict[str, float]) -> None:
        step = int(row["epoch"])
        for key in ("train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds"):
            if row.get(key) == row.get(key):  # NaN when there is no validation split
                self.writer.add_scalar(key.replace("_", "/", 1), row[key], step)

    def finish(self, config: dict[str, Any], metrics: dict[str, float]) -> None:
        hparams = {k: v for k, v in config.items() if isinstance(v, int | float | str | bool)}
        self.writer.add_hparams(hparams, {f"final/{k}": v for k, v in metrics.items() if v is not None}, run_name=".")
        self.writer.close()
