"""--min-confidence: a file below it still gets its row, marked "abstained" in every format; exit codes unchanged."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from runtime_files import TINY
from typer.testing import CliRunner

from cifar_runtime import Classifier, UsageError
from cifar_runtime.cli import app


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["--model", str(TINY), *args])
    return result.exit_code, result.stdout, result.stderr


def test_the_threshold_splits_the_rows_at_their_own_confidence(cifar_fixture: Path) -> None:
    folder = str(cifar_fixture / "test" / "cat")
    code, out, _ = run(folder, "-f", "jsonl")
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and not any(r["abstained"] for r in rows)
    ranked = sorted(r["confidence"] for r in rows)
    median = (ranked[len(rows) // 2 - 1] + ranked[len(rows) // 2]) / 2  # between two rows: rounding cannot matter
    code, out, err = run(folder, "-f", "jsonl", "--min-confidence", str(median))
    marked = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [r["abstained"] for r in marked] == [r["confidence"] < median for r in rows]
    below = sum(r["abstained"] for r in marked)
    assert 0 < below < len(rows) and f"{len(rows)} classified ({below} below --min-confidence)" in err
    assert [r["label"] for r in marked] == [r["label"] for r in rows]  # the best guess is kept, not replaced


def test_csv_and_table_say_it_too(cifar_fixture: Path) -> None:
    folder = str(cifar_fixture / "test" / "dog")
    _, out, _ = run(folder, "-f", "csv", "--min-confidence", "1")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert rows and {r["abstained"] for r in rows} == {"true"}
    _, out, _ = run(folder, "--min-confidence", "1")
    assert all("[abstained: below --min-confidence]" in line for line in out.splitlines()[1:])


@pytest.mark.parametrize("value", ["1.5", "-0.1", "nan", "high"])
def test_a_threshold_that_is_not_a_probability_is_a_usage_error(cifar_fixture: Path, value: str) -> None:
    code, out, err = run(str(cifar_fixture / "test" / "dog"), "--min-confidence", value)
    assert code == 2 and out == "" and "minimum confidence must be a probability between 0 and 1" in err
    with pytest.raises(UsageError):
        Classifier(TINY, min_confidence=float(value) if value != "high" else value)
