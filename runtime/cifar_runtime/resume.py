"""--resume: read an earlier jsonl/csv output back, so a run skips the files it classified and retries the rest.

Before appending, the file is cleaned: a half-written last row (the run was killed mid-write) is cut, and error
rows are removed (atomically), because their files are tried again and will get a new row.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from cifar_runtime.atomic import atomic_write
from cifar_runtime.errors import UsageError
from cifar_runtime.output import CSV_COLUMNS, RESUMABLE, csv_line

_TAIL = 1 << 20  # bytes read back to find a half-written last row; far longer than any row
SETTINGS_SUFFIX = ".run.json"  # beside a jsonl/csv output: what its rows were made with, for --resume to check


def settings_path(output: Path) -> Path:
    """preds.jsonl -> preds.jsonl.run.json"""
    return output.with_name(output.name + SETTINGS_SUFFIX)


def check_settings(output: Path, settings: dict[str, object]) -> None:
    """UsageError when `output`'s rows were made with other settings than `settings` (model, top-k, ...): appending
    would mix two runs in one file. An output without a settings file (an older one) is taken as it is."""
    try:
        earlier = json.loads(settings_path(output).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return
    except (OSError, ValueError) as e:
        raise UsageError(
            f"cannot resume: {settings_path(output)} is unreadable ({e}); remove it to resume anyway"
        ) from e
    # The model's name is for people: the same file under another name makes the same rows.
    differ = [k for k in settings if k != "model" and k in earlier and earlier[k] != settings[k]]
    if differ:
        said = "; ".join(
            f"the model was {earlier.get('model')!r}, now {settings['model']!r}"
            if k == "model_sha256"
            else f"{k} was {earlier[k]!r}, now {settings[k]!r}"
            for k in differ
        )
        raise UsageError(
            f"cannot resume {output}: its rows were made with other settings ({said}): pass the same "
            "flags, or write to a new --output"
        )


def write_settings(output: Path, settings: dict[str, object]) -> None:
    """Record what `output`'s rows are made with (atomically), for a later --resume to check."""
    with atomic_write(settings_path(output)) as f:
        f.write(json.dumps(settings, indent=2) + "\n")


@dataclass(frozen=True)
class Resume:
    """What an earlier output holds."""

    done: frozenset[str] = frozenset()  # paths (as displayed) that keep their row
    retried: int = 0  # error rows removed from the file because their files are tried again


@dataclass(frozen=True)
class _Row:
    path: str
    failed: bool
    text: str  # the row exactly as it is written in the file


def read_resume(path: Path, fmt: str, inputs: Collection[str]) -> Resume:
    """The earlier output at `path` (absent: nothing done), minus its partial last row and the error rows of
    `inputs` (paths as displayed), which this run tries again."""
    if fmt not in RESUMABLE:
        raise UsageError(f"--resume needs --format {' or '.join(RESUMABLE)}, not {fmt}")
    if not path.exists():
        return Resume()
    try:
        _drop_partial_last_line(path)
        rows = _read_csv(path) if fmt == "csv" else _read_jsonl(path)
        kept = [row for row in rows if not (row.failed and row.path in inputs)]
        if len(kept) < len(rows):
            with atomic_write(path) as out:
                out.write((csv_line(CSV_COLUMNS) if fmt == "csv" else "") + "".join(row.text for row in kept))
    except OSError as e:
        raise UsageError(f"cannot resume from {path}: {e.strerror or e}") from e
    return Resume(frozenset(row.path for row in kept), len(rows) - len(kept))


def _read_jsonl(path: Path) -> list[_Row]:
    rows = []
    with path.open(encoding="utf-8", newline="") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                rows.append(_Row(row["path"], "error" in row, line if line.endswith("\n") else line + "\n"))
            except (ValueError, KeyError, TypeError) as e:
                raise UsageError(f"cannot resume: line {number} of {path} is not a cifar-infer row") from e
    return rows


def _read_csv(path: Path) -> list[_Row]:
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is not None and tuple(reader.fieldnames) != CSV_COLUMNS:
            raise UsageError(f"cannot resume: {path} is not a cifar-infer csv ({reader.fieldnames})")
        # rewritten exactly as CsvWriter wrote it: the same cells through the same function
        return [_Row(row["path"], bool(row["error"]), csv_line([row[c] for c in CSV_COLUMNS])) for row in reader]


def _drop_partial_last_line(path: Path) -> None:
    """Cut what an interrupted run left after the last newline; only the file's tail is read."""
    with path.open("r+b") as f:
        size = f.seek(0, os.SEEK_END)
        start = f.seek(max(0, size - _TAIL))
        tail = f.read()
        if tail and not tail.endswith(b"\n"):
            f.truncate(start + tail.rfind(b"\n") + 1)  # rfind -1: the tail is one partial row
