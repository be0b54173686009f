"""Write Results as a table, json, jsonl or csv, one row per input, each flushed as soon as it is done.

jsonl/csv rows are exactly {"path", "label", "index", "confidence", "top_k": [{"label", "confidence"}...],
"abstained"} for a classified file and {"path", "error"} for one that could not be read (csv: one header for both,
the unused cells empty, top_k as a JSON list, abstained as true/false). `abstained` is true when the confidence is
below --min-confidence: the label is the model's best guess, not an answer to act on.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Sequence
from typing import TextIO

from cifar_runtime.errors import UsageError
from cifar_runtime.pipeline import Result
from cifar_runtime.text import terminal_safe

FORMATS = ("table", "json", "jsonl", "csv")  # cifar-infer --format
RESUMABLE = ("jsonl", "csv")  # streamed row by row: --resume can continue them
RAY_FORMATS = (*RESUMABLE, "parquet")  # cifar-ray --format: Parquet is written by Ray's workers
CSV_COLUMNS = ("path", "label", "index", "confidence", "top_k", "abstained", "error")
DIGITS = 6  # confidences are rounded to this many decimals


def display_path(path: str) -> str:
    """A path as output shows it, UTF-8 and unambiguous: a byte that is not UTF-8 appears as \\xNN and a backslash
    as two, so a name holding byte 0xFF and one holding the text "\\xff" get different rows (see `original_path`)."""
    raw = os.fsencode(path).replace(b"\\", b"\\\\")
    return raw.decode("utf-8", "backslashreplace")


def original_path(shown: str) -> str:
    """The path `display_path` showed as `shown` (its inverse)."""
    return os.fsdecode(shown.encode("utf-8").decode("unicode_escape").encode("latin-1")) if "\\" in shown else shown


def to_row(result: Result) -> dict[str, object]:
    """The jsonl/csv row of one Result."""
    path = display_path(result.path)
    if result.prediction is None:
        return {"path": path, "error": result.error}
    p = result.prediction
    return {
        "path": path,
        "label": p.label,
        "index": p.index,
        "confidence": round(p.confidence, DIGITS),
        "top_k": [{"label": s.label, "confidence": round(s.confidence, DIGITS)} for s in p.top_k],
        "abstained": p.abstained,
    }


class Writer:
    """Streams rows to a text stream; subclasses render one format."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def begin(self) -> None:
        """Write whatever precedes the first row."""

    def write(self, result: Result) -> None:
        """Write one row and flush it."""
        self._emit(json.dumps(to_row(result), ensure_ascii=False) + "\n")  # jsonl

    def end(self) -> None:
        """Write whatever follows the last row."""

    def _emit(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()  # a crash at file 9,000 of 10,000 keeps the first 8,999 rows


class CsvWriter(Writer):
    def __init__(self, stream: TextIO, header: bool) -> None:
        super().__init__(stream)
        self.header = header

    def begin(self) -> None:
        if self.header:
            self._emit(csv_line(CSV_COLUMNS))

    def write(self, result: Result) -> None:
        row = to_row(result)
        if "top_k" in row:
            row["top_k"] = json.dumps(row["top_k"], ensure_ascii=False)
            row["abstained"] = "true" if row["abstained"] else "false"
        self._emit(csv_line([str(row.get(column, "")) for column in CSV_COLUMNS]))


def csv_line(cells: Sequence[str]) -> str:
    """One csv row, newline included."""
    # The csv module quotes only fields holding a character of its line terminator ("\n" here): a "\r" in a
    # file name would be written bare and split the row for every reader, so such a row is quoted whole.
    quoting = csv.QUOTE_ALL if any("\r" in cell for cell in cells) else csv.QUOTE_MINIMAL
    line = io.StringIO()
    csv.writer(line, lineterminator="\n", quoting=quoting).writerow(cells)
    return line.getvalue()


class JsonWriter(Writer):
    """One JSON array; it is valid only once the run ends (use jsonl to stream into other tools)."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self.rows = 0

    def begin(self) -> None:
        self._emit("[")

    def write(self, result: Result) -> None:
        self._emit(("," if self.rows else "") + "\n  " + json.dumps(to_row(result), ensure_ascii=False))
        self.rows += 1

    def end(self) -> None:
        self._emit("\n]\n" if self.rows else "]\n")


class TableWriter(Writer):
    """Aligned columns for people: label, confidence, path last (so long paths never break alignment)."""

    def __init__(self, stream: TextIO, label_width: int) -> None:
        super().__init__(stream)
        self.width = max(label_width, len("label"), len("error"))

    def begin(self) -> None:
        self._emit(f"{'label':<{self.width}}  {'conf':>6}  path\n")

    def write(self, result: Result) -> None:
        path = terminal_safe(result.path)  # a name must not start a new row or reach the terminal as a control
        p = result.prediction
        if p is None:
            self._emit(f"{'error':<{self.width}}  {'-':>6}  {path}  ({terminal_safe(str(result.error))})\n")
            return
        others = ", ".join(f"{terminal_safe(s.label)} {s.confidence:.1%}" for s in p.top_k[1:])
        suffix = (f"  ({others})" if others else "") + ("  [abstained: below --min-confidence]" if p.abstained else "")
        self._emit(f"{terminal_safe(p.label):<{self.width}}  {p.confidence:>6.1%}  {path}{suffix}\n")


def make_writer(fmt: str, stream: TextIO, label_width: int, header: bool = True) -> Writer:
    """The writer for --format `fmt`; `header=False` when appending to an earlier csv."""
    if fmt == "jsonl":
        return Writer(stream)
    if fmt == "csv":
        return CsvWriter(stream, header)
    if fmt == "json":
        return JsonWriter(stream)
    if fmt == "table":
        return TableWriter(stream, label_width)
    raise UsageError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
