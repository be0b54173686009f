"""Several finished runs side by side: mean ± std over seeds per recipe, minutes per run, time to accuracy."""

from __future__ import annotations

import csv
import json
import statistics
from dataclasses import dataclass
from pathlib import Path

from cifar_train.checkpoint import atomic_write
from cifar_train.config import recipe_of
from cifar_train.errors import UserError
from cifar_train.plots import plot_time_to_accuracy


@dataclass(frozen=True)
class Group:
    recipe: str
    runs: list[str]
    test_acc: list[float]  # fractions, one per run (each run's test evaluated once, on its val-selected model)
    val_acc: list[float]
    minutes: list[float]  # training epochs (with per-epoch validation) per run

    def line(self) -> str:
        return (f"{self.recipe}: {len(self.runs)} run(s), test {_mean_std(self.test_acc)}, "
                f"val {_mean_std(self.val_acc)}, {statistics.mean(self.minutes):.1f} min per run")


def _mean_std(values: list[float]) -> str:
    mean = 100 * statistics.mean(values)
    return f"{mean:.2f}%" if len(values) < 2 else f"{mean:.2f} ± {100 * statistics.stdev(values):.2f}%"


def _history(run: Path) -> list[dict[str, float]]:
    with open(run / "history.csv", newline="") as f:
        return [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(f)]


def summarize(runs: list[Path], out: Path | None = None) -> list[Group]:
    """Group runs by recipe; write summary.json and time_to_accuracy.png into `out` when given."""
    groups: dict[str, Group] = {}
    curves: dict[str, list[tuple[float, float]]] = {}
    for run in runs:
        if not (run / "metrics.json").is_file():
            raise UserError(f"{run} has no metrics.json: give the folders of finished runs")
        metrics = json.loads((run / "metrics.json").read_text())
        recipe = recipe_of(metrics["config"]) or f"{metrics['arch']} (custom)"
        history, elapsed, points = _history(run), 0.0, []
        for row in history:
            elapsed += row["seconds"] + row.get("eval_seconds", 0.0)
            if "val_acc" in row:
                points.append((elapsed / 60, row["val_acc"]))
        g = groups.setdefault(recipe, Group(recipe, [], [], [], []))
        g.runs.append(str(run))
        g.test_acc.append(metrics["test_acc"])
        g.val_acc.append(metrics["val_acc"] if metrics["val_acc"] is not None else float("nan"))
        g.minutes.append(elapsed / 60)
        curves[f"{recipe}, seed {metrics['seed']} ({run.name})"] = points
    if out is not None:
        summary = [{**g.__dict__, "test": _mean_std(g.test_acc), "val": _mean_std(g.val_acc)} for g in groups.values()]
        atomic_write(out / "summary.json", lambda tmp: tmp.write_text(json.dumps(summary, indent=2) + "\n"))
        plot_time_to_accuracy(curves, out / "time_to_accuracy.png", "CIFAR-10 validation accuracy against time")
    return list(groups.values())
