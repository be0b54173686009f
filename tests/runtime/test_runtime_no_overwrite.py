"""No command writes over one of its own inputs: an --output that is an input is refused before anything is opened."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from runtime_files import TINY
from typer.testing import CliRunner

from cifar_runtime.cli import app


@pytest.fixture()
def photos(cifar_fixture: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    shutil.copytree(cifar_fixture / "test" / "dog", folder / "dog")
    return folder


def infer(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["--model", str(TINY), *args])
    return result.exit_code, result.stderr


@pytest.mark.parametrize("fmt", ["table", "jsonl", "csv", "json"])
def test_an_output_that_is_the_input_file_is_refused_and_the_image_is_unchanged(photos: Path, fmt: str) -> None:
    image = photos / "dog" / "0000.jpg"
    before = image.read_bytes()
    code, err = infer(str(image), "-f", fmt, "-o", str(image))
    assert code == 2 and "is one of the inputs" in err and len(err.strip().splitlines()) == 1
    assert image.read_bytes() == before


def test_an_output_inside_an_input_folder_or_reached_by_a_link_is_refused(photos: Path, tmp_path: Path) -> None:
    image = photos / "dog" / "0003.jpg"
    before = image.read_bytes()
    code, err = infer(str(photos), "-f", "jsonl", "-o", str(image))
    assert code == 2 and "is one of the inputs" in err
    link = tmp_path / "results.jsonl"
    os.symlink(image, link)
    code, err = infer(str(photos), "-f", "jsonl", "-o", str(link))
    assert code == 2 and "is one of the inputs" in err
    code, err = infer(str(photos), "-f", "jsonl", "-o", str(photos / "dog" / ".." / "dog" / "0003.jpg"), "--resume")
    assert code == 2 and image.read_bytes() == before


def test_an_output_beside_the_inputs_is_fine_and_dash_is_stdout(photos: Path) -> None:
    result = CliRunner().invoke(app, ["--model", str(TINY), str(photos), "-f", "jsonl", "-o", "-"])
    assert result.exit_code == 0 and len(result.stdout.splitlines()) == 30 and not Path("-").exists()
    code, _ = infer(str(photos), "-f", "jsonl", "-o", str(photos / "rows.jsonl"))
    assert code == 0 and len((photos / "rows.jsonl").read_text().splitlines()) == 30
