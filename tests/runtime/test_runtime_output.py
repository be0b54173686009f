"""Row rendering: the exact jsonl/csv schema, json and table formats, resume reading, odd file names."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import pytest

from cifar_runtime import Prediction, Score, UsageError
from cifar_runtime.output import CSV_COLUMNS, display_path, make_writer, to_row
from cifar_runtime.pipeline import Result
from cifar_runtime.resume import Resume, read_resume
from cifar_runtime.status import Progress, Summary

OK = Result("a/cat.jpg", Prediction("cat", 3, 0.91234567, (Score("cat", 0.91234567), Score("dog", 0.05))))
BAD = Result("a/bad.jpg", error="not an image file Pillow can read")


def _render(fmt: str, results: list[Result], header: bool = True) -> str:
    stream = io.StringIO()
    writer = make_writer(fmt, stream, label_width=10, header=header)
    writer.begin()
    for result in results:
        writer.write(result)
    writer.end()
    return stream.getvalue()


def test_rows_have_exactly_the_documented_keys() -> None:
    assert to_row(OK) == {
        "path": "a/cat.jpg",
        "label": "cat",
        "index": 3,
        "confidence": 0.912346,
        "top_k": [{"label": "cat", "confidence": 0.912346}, {"label": "dog", "confidence": 0.05}],
        "abstained": False,
    }
    assert list(to_row(OK)) == ["path", "label", "index", "confidence", "top_k", "abstained"]
    assert to_row(BAD) == {"path": "a/bad.jpg", "error": "not an image file Pillow can read"}


def test_jsonl_is_one_object_per_line() -> None:
    lines = _render("jsonl", [OK, BAD]).splitlines()
    assert [json.loads(line) for line in lines] == [to_row(OK), to_row(BAD)]


def test_csv_has_one_header_for_both_row_kinds() -> None:
    rows = list(csv.reader(io.StringIO(_render("csv", [OK, BAD]))))
    assert tuple(rows[0]) == CSV_COLUMNS == ("path", "label", "index", "confidence", "top_k", "abstained", "error")
    assert rows[1][:4] == ["a/cat.jpg", "cat", "3", "0.912346"] and rows[1][5:] == ["false", ""]
    assert json.loads(rows[1][4]) == to_row(OK)["top_k"]
    assert rows[2] == ["a/bad.jpg", "", "", "", "", "", "not an image file Pillow can read"]
    assert _render("csv", [OK], header=False).count("\n") == 1


def test_json_is_one_valid_array() -> None:
    assert json.loads(_render("json", [OK, BAD])) == [to_row(OK), to_row(BAD)]
    assert json.loads(_render("json", [])) == []


def test_table_is_readable() -> None:
    header, ok, bad = _render("table", [OK, BAD]).splitlines()
    assert header.split() == ["label", "conf", "path"]
    assert ok.split() == ["cat", "91.2%", "a/cat.jpg", "(dog", "5.0%)"]
    assert bad.startswith("error") and bad.endswith("a/bad.jpg  (not an image file Pillow can read)")
    with pytest.raises(UsageError, match="format must be one of"):
        make_writer("xml", io.StringIO(), 5)


def test_non_utf8_file_names_are_escaped_not_crashing() -> None:
    odd = os.fsdecode(b"dir/caf\xe9.jpg")  # Latin-1 bytes: not decodable as UTF-8
    assert display_path(odd) == "dir/caf\\xe9.jpg"
    assert display_path("naïve 日本 name.jpg") == "naïve 日本 name.jpg"
    line = _render("jsonl", [Result(odd, error="x")])
    assert json.loads(line)["path"] == "dir/caf\\xe9.jpg"
    line.encode("utf-8")  # strict: no surrogates left


def test_read_resume_drops_a_partial_row_and_the_error_rows_it_retries(tmp_path: Path) -> None:
    inputs = {"a/cat.jpg", "a/bad.jpg"}
    jsonl = tmp_path / "out.jsonl"
    jsonl.write_text(_render("jsonl", [OK, BAD]) + '{"path": "a/half', encoding="utf-8")
    assert read_resume(jsonl, "jsonl", inputs) == Resume(frozenset({"a/cat.jpg"}), retried=1)
    assert jsonl.read_text(encoding="utf-8") == _render("jsonl", [OK])  # partial and error rows are gone
    table = tmp_path / "out.csv"
    table.write_text(_render("csv", [OK, BAD]) + "a/half,ca", encoding="utf-8")
    assert read_resume(table, "csv", inputs) == Resume(frozenset({"a/cat.jpg"}), retried=1)
    assert table.read_text(encoding="utf-8") == _render("csv", [OK])  # rewritten byte for byte, one header
    kept = tmp_path / "kept.jsonl"
    kept.write_text(_render("jsonl", [OK, BAD]), encoding="utf-8")
    assert read_resume(kept, "jsonl", {"a/cat.jpg"}).done == inputs  # not an input now: its error row stays
    assert kept.read_text(encoding="utf-8") == _render("jsonl", [OK, BAD])
    assert read_resume(tmp_path / "absent.jsonl", "jsonl", inputs) == Resume()
    only_partial = tmp_path / "partial.jsonl"
    only_partial.write_text('{"pa', encoding="utf-8")
    assert read_resume(only_partial, "jsonl", inputs) == Resume() and only_partial.read_bytes() == b""


def test_read_resume_refuses_foreign_files(tmp_path: Path) -> None:
    other = tmp_path / "other.jsonl"
    other.write_text("not json\n", encoding="utf-8")
    with pytest.raises(UsageError, match="line 1 of .* is not a cifar-infer row"):
        read_resume(other, "jsonl", set())
    other_csv = tmp_path / "other.csv"
    other_csv.write_text("a,b\n1,2\n", encoding="utf-8")
    with pytest.raises(UsageError, match="not a cifar-infer csv"):
        read_resume(other_csv, "csv", set())
    with pytest.raises(UsageError, match="--resume needs --format jsonl or csv"):
        read_resume(other, "table", set())


def test_progress_and_summary() -> None:
    stream = io.StringIO()
    progress = Progress(total=3, stream=stream, enabled=True)
    for done in (1, 2, 3):
        progress.update(done)
    progress.close()
    assert "3/3" in stream.getvalue() and stream.getvalue().endswith("\n")
    quiet = io.StringIO()
    Progress(total=3, stream=quiet, enabled=False).update(3)
    assert quiet.getvalue() == ""
    line = Summary(files=10, classified=8, failed=2, skipped=5, seconds=2.0).line()
    assert line == "10 files, 8 classified, 2 failed, 5 skipped (already in output), 4.0 images/s (2.00 s)"


def test_a_byte_name_and_its_escaped_spelling_get_distinct_keys_that_round_trip() -> None:
    from cifar_runtime.output import original_path

    byte_name, text_name = os.fsdecode(b"dir/bad\xff.jpg"), "dir/bad\\xff.jpg"
    shown = {display_path(byte_name), display_path(text_name)}
    assert len(shown) == 2
    for name in (byte_name, text_name, "dir/a\\b\\\\c.jpg", "naïve 日本.jpg"):
        assert original_path(display_path(name)) == name


def test_resume_finishes_both_files_whose_names_once_collided(tmp_path: Path, cifar_fixture: Path) -> None:
    import shutil

    from runtime_files import TINY
    from typer.testing import CliRunner

    from cifar_runtime.cli import app

    source = next((cifar_fixture / "test" / "cat").iterdir())
    folder = os.fsencode(tmp_path / "in")
    os.mkdir(folder)
    for name in (b"bad\xff.jpg", b"bad\\xff.jpg"):
        shutil.copy(source, os.path.join(folder, name))
    out = tmp_path / "rows.jsonl"
    first = CliRunner().invoke(app, ["-m", str(TINY), os.fsdecode(folder), "-f", "jsonl", "-o", str(out)])
    again = CliRunner().invoke(app, ["-m", str(TINY), os.fsdecode(folder), "-f", "jsonl", "-o", str(out), "--resume"])
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert first.exit_code == again.exit_code == 0 and len(rows) == 2 and len({r["path"] for r in rows}) == 2
    assert "2 skipped" in again.stderr
