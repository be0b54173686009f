"""The run record, metrics.json: one typed schema shared by whoever writes it (a run's finish) and whoever reads it
(`cifar-train compare`, `cifar-export card`). Records written before a field existed read with its default.

JSON-ready and numpy-free, so any tool can read it without torch.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from cifar_train.errors import UserError


@dataclass(frozen=True)
class Timing:
    """Seconds of one run (every epoch across resumes; `process_seconds` of the last process only)."""

    epochs_seconds: float = 0.0
    train_data_seconds: float | None = None  # of the epochs, waiting for augmented batches
    epoch_eval_seconds: float | None = None  # per-epoch selection passes
    final_eval_seconds: float | None = None  # test (each TTA level) and val of the selected model
    process_seconds: float = 0.0
    mean_epoch_seconds: float | None = None
    mean_data_wait_seconds: float | None = None
    mean_images_per_s: float | None = None
    mean_step_images_per_s: float | None = None


@dataclass(frozen=True)
class Environment:
    torch: str = ""
    device: str = ""
    world_size: int = 1
    python: str = ""
    cpu_threads: int = 0
    cpu: str = ""  # training times depend on the CPU's model and ISA level
    cpu_capability: str = ""
    cpu_native_bf16: bool | None = None
    cuda_device: str | None = None


@dataclass(frozen=True)
class DataRecord:
    source: str  # the --data folder, relative to where the run started
    train: int  # images trained on
    val: int  # held out to select the best epoch
    test: int


@dataclass(frozen=True)
class RunRecord:
    """metrics.json: what a finished run measured, and how it was made. Accuracies are fractions."""

    arch: str
    best_epoch: int
    epochs: int
    selected_on: str  # "val", or "test" with --val-size 0
    selection_note: str
    val_acc: float | None
    val_loss: float | None
    test_acc: float
    test_loss: float
    data: DataRecord
    seed: int
    config: dict[str, Any]  # asdict(TrainConfig), paths made portable
    timing: Timing
    environment: Environment
    tta: int = 0
    test_acc_by_tta: dict[str, float] = field(default_factory=dict)
    val_acc_by_tta: dict[str, float] = field(default_factory=dict)
    test: dict[str, Any] = field(default_factory=dict)  # classification report: per class, macro, confusion matrix
    val: dict[str, Any] | None = None
    test_roc_auc: dict[str, float] = field(default_factory=dict)  # one-vs-rest, per class
    temperature_scaling: dict[str, Any] = field(default_factory=dict)  # per TTA level: Calibration.to_dict()
    dataset: dict[str, Any] | None = None  # cifar_train.dataset.DatasetInfo; None in records that predate it

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> RunRecord:
        """A record as written, by this version or an earlier one (fields it lacks take their defaults)."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in raw.items() if k in known}
        values["data"] = DataRecord(**raw["data"])
        values["timing"] = _of(Timing, raw.get("timing") or {})
        values["environment"] = _of(Environment, raw.get("environment") or {})
        return cls(**values)

    def write(self, path: Path) -> None:
        from cifar_train.checkpoint import atomic_write  # torch-free readers never need it

        atomic_write(path, lambda tmp: tmp.write_text(json.dumps(self.to_json(), indent=2) + "\n"))

    @classmethod
    def read(cls, path: Path) -> RunRecord:
        """The record in `path` (a metrics.json), or UserError saying what is wrong with it."""
        if not path.is_file():
            raise UserError(f"{path.parent} has no metrics.json: give the folder of a finished cifar-train run")
        try:
            return cls.from_json(json.loads(path.read_text()))
        except (ValueError, KeyError, TypeError) as e:
            raise UserError(f"{path} is not a cifar-train run record ({e})") from e

    @property
    def fit(self) -> dict[str, Any] | None:
        """The temperature fit at the run's own TTA level, if one was made."""
        return self.temperature_scaling.get(str(self.tta))


def _of(kind: type, raw: dict[str, Any]) -> Any:
    known = {f.name for f in fields(kind)}
    return kind(**{k: v for k, v in raw.items() if k in known})
