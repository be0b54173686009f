"""Several finished runs side by side: mean ± std over seeds per recipe, minutes per run, time to accuracy."""

from __future__ import annotations

import csv
import json
import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cifar_train.checkpoint import atomic_write
from cifar_train.config import recipe_and_flags
from cifar_train.plots import plot_time_to_accuracy
from cifar_train.record import RunRecord


@dataclass(frozen=True)
class Run:
    """One finished run folder, as compared: accuracies are fractions, each run's test evaluated once."""

    path: Path
    recipe: str
    flags: tuple[str, ...]  # the flags that turn the recipe into this run's config, e.g. ("--no-lookahead",)
    seed: int
    test_acc: float  # at the recipe's TTA level
    test_acc_no_tta: float | None  # None when the run did not record it
    val_acc: float
    minutes: float  # training epochs with their per-epoch validation
    curve: list[tuple[float, float]]  # (minutes, val_acc) after each epoch
    test_ece: tuple[float, float] | None = None  # (before, after) temperature scaling at the run's TTA level

    @property
    def ece(self) -> str:
        """The test ECE before and after temperature scaling, e.g. "18.61% → 0.93%"; "–" when none was fitted."""
        return "–" if self.test_ece is None else f"{self.test_ece[0]:.2%} → {self.test_ece[1]:.2%}"

    @property
    def command(self) -> str:
        """The command that trains this run, e.g. "fast --no-lookahead"."""
        return " ".join([self.recipe, *self.flags])

    def group_name(self, pool: frozenset[str]) -> str:
        """The command with the pooled flags (names without dashes, e.g. "cpu-amp") left out, and said so."""
        pooled = [f for f in self.flags if _flag_name(f) in pool]
        kept = [f for f in self.flags if f not in pooled]
        return " ".join([self.recipe, *kept]) + (f" (pooled over {', '.join(sorted(pool))})" if pool else "")


@dataclass(frozen=True)
class Group:
    recipe: str
    runs: list[str]
    test_acc: list[float]  # fractions, one per run (each run's test evaluated once, on its val-selected model)
    val_acc: list[float]
    minutes: list[float]  # training epochs (with per-epoch validation) per run
    test_ece: list[tuple[float, float]]  # (before, after) temperature scaling, for the runs that fitted one
    test_acc_no_tta: list[float | None]  # one view, one per run (None: not recorded)

    def line(self) -> str:
        ece = ""
        if self.test_ece:
            before, after = (statistics.mean(e[i] for e in self.test_ece) for i in (0, 1))
            ece = f", test ECE {before:.2%} → {after:.2%} (temperature scaling, {len(self.test_ece)} run(s))"
        one_view = [a for a in self.test_acc_no_tta if a is not None]
        # shown when every run recorded it, unless the runs have no TTA (then test is the one view)
        shown = len(one_view) == len(self.runs) and one_view != self.test_acc
        views = f" (one view {_mean_std(one_view)})" if shown else ""
        return (
            f"{self.recipe}: {len(self.runs)} run(s), test {_mean_std(self.test_acc)}{views}, "
            f"val {_mean_std(self.val_acc)}, {statistics.mean(self.minutes):.1f} min per run{ece}"
        )


def _flag_name(setting: str) -> str:
    """The switch a flag sets: "--translate 0" -> "translate", "--no-lookahead" and "lookahead" -> "lookahead"."""
    name = setting.split()[0].removeprefix("--")
    return name.removeprefix("no-")


def _mean_std(values: list[float]) -> str:
    mean = 100 * statistics.mean(values)
    return f"{mean:.2f}%" if len(values) < 2 else f"{mean:.2f} ± {100 * statistics.stdev(values):.2f}%"


def _history(run: Path) -> list[dict[str, float]]:
    with open(run / "history.csv", newline="") as f:
        return [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(f)]


def load_run(run: Path) -> Run:
    """Read a finished run folder (metrics.json, history.csv)."""
    record = RunRecord.read(run / "metrics.json")
    elapsed, curve = 0.0, []
    for row in _history(run):
        elapsed += row["seconds"] + row.get("eval_seconds", 0.0)
        if "val_acc" in row:
            curve.append((elapsed / 60, row["val_acc"]))
    name, flags = recipe_and_flags(record.config)
    val = record.val_acc if record.val_acc is not None else float("nan")
    # Runs without TTA (and records older than test_acc_by_tta) have their plain accuracy as test_acc.
    by_tta = record.test_acc_by_tta or ({"0": record.test_acc} if not record.config.get("tta") else {})
    fit = record.fit
    ece = (fit["test_before"]["ece"], fit["test_after"]["ece"]) if fit else None
    return Run(run, name, tuple(flags), record.seed, record.test_acc, by_tta.get("0"), val, elapsed / 60, curve, ece)


def summarize(runs: list[Run], out: Path | None = None, pool: Iterable[str] = ()) -> list[Group]:
    """Group runs by recipe and flags, counting runs that differ only in `pool`'s flags ("cpu-amp" or "--cpu-amp")
    as one; write summary.json and time_to_accuracy.png into `out` when given."""
    pooled = frozenset(map(_flag_name, pool))
    groups: dict[str, Group] = {}
    curves: dict[str, list[tuple[float, float]]] = {}
    for r in runs:
        name = r.group_name(pooled)
        g = groups.setdefault(name, Group(name, [], [], [], [], [], []))
        g.runs.append(str(r.path))
        g.test_acc.append(r.test_acc)
        g.val_acc.append(r.val_acc)
        g.minutes.append(r.minutes)
        g.test_acc_no_tta.append(r.test_acc_no_tta)
        if r.test_ece is not None:
            g.test_ece.append(r.test_ece)
        curves[f"{r.command}, seed {r.seed} ({r.path.name})"] = r.curve
    if out is not None:
        summary = [{**g.__dict__, "test": _mean_std(g.test_acc), "val": _mean_std(g.val_acc)} for g in groups.values()]
        atomic_write(out / "summary.json", lambda tmp: tmp.write_text(json.dumps(summary, indent=2) + "\n"))
        plot_time_to_accuracy(curves, out / "time_to_accuracy.png", "CIFAR-10 validation accuracy against time")
    return list(groups.values())


def table(rows: list[Run]) -> str:
    """One markdown row per run, differences in points against the first run (an ablation table)."""
    base = rows[0]

    def pct(x: float | None) -> str:
        return "–" if x is None or math.isnan(x) else f"{100 * x:.2f}%"  # nan: selected on test, no validation

    def delta(x: float | None, ref: float | None) -> str:
        return "" if x is None or ref is None else f"{100 * (x - ref):+.2f}"

    lines = [
        "| run | command | seed | test | Δ | test, no TTA | Δ | validation | minutes | test ECE (T-scaled) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        d_tta, d_plain = (
            ("", "")
            if r is base
            else (delta(r.test_acc, base.test_acc), delta(r.test_acc_no_tta, base.test_acc_no_tta))
        )
        lines.append(
            f"| {r.path.name} | `{r.command}` | {r.seed} | {pct(r.test_acc)} | {d_tta} "
            f"| {pct(r.test_acc_no_tta)} | {d_plain} | {pct(r.val_acc)} | {r.minutes:.0f} | {r.ece} |"
        )
    return "\n".join(lines)
