"""Untrusted input: hostile file names never reach a terminal raw; hostile model metadata is refused at load."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
from pathlib import Path

import pytest
from runtime_files import TINY, with_metadata
from typer.testing import CliRunner, Result

from cifar_runtime import Classifier, ModelError, ModelInfo, validate_metadata
from cifar_runtime.cli import app
from cifar_runtime.text import terminal_safe

# Written independently of cifar_runtime.text, so a gap there fails here: C0 (newline aside, it ends lines),
# DEL, C1, line/paragraph separators, bidi controls and lone surrogates.
RAW = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
HOSTILE = [
    "a\x1b[31mRED\x1b[0m.jpg",  # colours the terminal
    "b\nfake  99.9%  row.jpg",  # forges a row in the table
    "c\rover.jpg",  # returns to the start of the line
    "d\x1b]0;title\x07.jpg",  # sets the window title
    "e\x9b2J.jpg",  # C1 CSI: clears the screen on terminals that honour 8-bit controls
    "f\u202egnp.jpg",  # right-to-left override: reorders what follows
    "g\u2028h.jpg",  # line separator
    "h\x7f\t.jpg",
]
UNDECODABLE = b"i\xff\xfe.jpg"  # not UTF-8: os.fsdecode gives lone surrogates
BROKEN = "j\x1b[2J broken.jpg"  # not an image: its error row carries the name too
ALL_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def invoke(*args: str | Path) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def hostile_folder(tmp_path_factory: pytest.TempPathFactory, test_images: list[Path]) -> Path:
    root = tmp_path_factory.mktemp("hostile")
    for name in HOSTILE:
        shutil.copy(test_images[0], root / name)
    fd = os.open(os.path.join(os.fsencode(root), UNDECODABLE), os.O_WRONLY | os.O_CREAT)
    os.write(fd, test_images[0].read_bytes())
    os.close(fd)
    (root / BROKEN).write_bytes(b"not an image")
    return root


def expected_paths(root: Path) -> set[str]:
    names = [*HOSTILE, BROKEN]
    return {str(root / n) for n in names} | {os.path.join(str(root), "i\\xff\\xfe.jpg")}


def test_terminal_safe_escapes_like_ls() -> None:
    assert terminal_safe("a\x1b[31mb\nc\rd\te") == "a\\x1b[31mb\\nc\\rd\\te"
    assert terminal_safe("\x9b\x7f\u202e\u2028") == "\\x9b\\x7f\\u202e\\u2028"
    assert terminal_safe(os.fsdecode(b"caf\xe9")) == "caf\\xe9"  # the byte, as jsonl shows it
    assert terminal_safe("naïve 日本語 name, 99.9%") == "naïve 日本語 name, 99.9%"  # printable text untouched


def test_table_and_stderr_show_hostile_names_escaped(hostile_folder: Path) -> None:
    result = invoke("-m", TINY, "-k", "2", hostile_folder)
    assert result.exit_code == 1, result.output
    assert not RAW.search(result.stdout) and not RAW.search(result.stderr)
    rows = result.stdout.splitlines()[1:]
    assert len(rows) == len(HOSTILE) + 2  # one line per file: no name started a row of its own
    assert any(r.endswith("a\\x1b[31mRED\\x1b[0m.jpg  (" + r.split("  (")[-1]) for r in rows)
    assert any("i\\xff\\xfe.jpg" in r for r in rows)
    assert any(r.startswith("error") and "j\\x1b[2J broken.jpg" in r for r in rows)


@pytest.mark.parametrize("fmt", ["jsonl", "json", "csv"])
def test_machine_formats_keep_exact_names(hostile_folder: Path, fmt: str) -> None:
    result = invoke("-m", TINY, "-f", fmt, hostile_folder)
    assert result.exit_code == 1, result.output
    if fmt == "jsonl":
        rows = [json.loads(line) for line in result.stdout.split("\n") if line]  # splitlines() would split at U+2028
    elif fmt == "json":
        rows = json.loads(result.stdout)
    else:
        rows = list(csv.DictReader(io.StringIO(result.stdout, newline="")))
    assert {r["path"] for r in rows} == expected_paths(hostile_folder)
    assert not RAW.search(result.stderr)


def test_messages_naming_hostile_paths_are_escaped(tmp_path: Path, test_images: list[Path]) -> None:
    bad_model = tmp_path / "m\x1b[2J\n.onnx"
    bad_model.write_bytes(b"junk")
    unwritable = tmp_path / "no\x1b]0;x\x07" / "o.csv"
    for args in (["-m", bad_model, test_images[0]], ["-m", TINY, "-o", unwritable, test_images[0]]):
        result = invoke(*args)
        assert result.exit_code == 2
        assert len(result.stderr.splitlines()) == 1 and not RAW.search(result.stderr), result.stderr


def test_info_escapes_metadata_values(tmp_path: Path) -> None:
    model = tmp_path / "note.onnx"
    model.write_bytes(with_metadata({"note": "\x1b]52;c;cm0gLXJmIH4=\x07 clipboard", "arch": "cnn\x1b[2J"}))
    result = invoke("--info", "-m", model)
    assert result.exit_code == 0, result.output
    assert not RAW.search(result.stdout) and "note: \\x1b]52;c;cm0gLXJmIH4=\\x07 clipboard" in result.stdout


def classes(*names: str) -> str:
    return json.dumps(list(names))


HOSTILE_METADATA = {
    "escape in a class": ({"classes": classes("cat\x1b[2J", *ALL_CLASSES[1:])}, "class name 0 'cat\\x1b[2J'"),
    "newline in a class": ({"classes": classes(*ALL_CLASSES[:9], "x\nfake row")}, "class name 9"),
    "bidi in a class": ({"classes": classes("\u202etac", *ALL_CLASSES[1:])}, "class name 0"),
    "blank class": ({"classes": classes(" ", *ALL_CLASSES[1:])}, "non-blank"),
    "long class": ({"classes": classes("x" * 101, *ALL_CLASSES[1:])}, "at most 100 characters"),
    "duplicate": ({"classes": classes("cat", *ALL_CLASSES[1:])}, "'cat' is listed twice"),
    "nine of ten": ({"classes": classes(*ALL_CLASSES[:9])}, "names 9 classes but the model outputs 10"),
    "not strings": ({"classes": json.dumps(list(range(10)))}, "classes must be a JSON list of strings"),
    "no classes": ({"classes": "[]"}, "lists no classes"),
    "nan mean": ({"mean": "[NaN, 0.5, 0.5]"}, "mean [nan, 0.5, 0.5] is not within [0, 1]"),
    "zero std": ({"std": "[0.5, 0, 0.5]"}, "std [0.5, 0.0, 0.5] is not within (0, 1]"),
    "negative std": ({"std": "[-0.5, 0.5, 0.5]"}, "std"),
    "infinite std": ({"std": "[Infinity, 0.5, 0.5]"}, "std"),
    "huge input": ({"input_size": "[100000, 100000]"}, "input_size [100000, 100000] is not between 1 and 4096"),
    "zero input": ({"input_size": "[0, 32]"}, "input_size"),
    "nan accuracy": ({"val_acc": "nan"}, "val_acc nan is not a fraction"),
    "invalid UTF-8": ({"classes": b'["\xff\xfe"]'}, "metadata that is not valid UTF-8"),
}


@pytest.mark.parametrize("case", HOSTILE_METADATA)
def test_hostile_metadata_is_refused_at_load(tmp_path: Path, test_images: list[Path], case: str) -> None:
    changes, message = HOSTILE_METADATA[case]
    model = tmp_path / "hostile.onnx"
    model.write_bytes(with_metadata(changes))
    with pytest.raises(ModelError) as caught:
        Classifier(model, device="cpu")
    assert message in str(caught.value) and not RAW.search(str(caught.value))
    result = invoke("-m", model, test_images[0])
    assert result.exit_code == 2 and result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("cifar-infer: error: ") and message in line and not RAW.search(line)


def test_validator_is_public_for_export() -> None:
    good = ModelInfo("cnn", tuple(ALL_CLASSES), (32, 32), (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    validate_metadata(good, logits_width=10)
    with pytest.raises(ModelError, match="outputs 11 scores"):
        validate_metadata(good, logits_width=11, source="cnn.onnx")
    with pytest.raises(ModelError, match=r"cnn.onnx has invalid metadata: class name 1 'b\\n'"):
        validate_metadata(ModelInfo("cnn", ("a", "b\n"), (32, 32), (0, 0, 0), (1, 1, 1)), source="cnn.onnx")
