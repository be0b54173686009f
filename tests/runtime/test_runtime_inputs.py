"""Expanding paths: recursive walk, extensions, symlink loops, stdin, unreadable folders."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from cifar_runtime.inputs import find_images, read_path_list


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_walk_is_recursive_sorted_and_case_insensitive(tmp_path: Path) -> None:
    for name in ("b/2.PNG", "b/1.jpg", "a.JPeG", "c/d/e/deep.webp", "c/notes.txt", "c/.DS_Store", "noext"):
        _touch(tmp_path / name)
    found = find_images([str(tmp_path)])
    rel = [os.path.relpath(f, tmp_path) for f in found.files]
    assert rel == ["a.JPeG", "b/1.jpg", "b/2.PNG", "c/d/e/deep.webp"]
    assert found.walked and not found.unreadable


def test_explicit_files_are_taken_whatever_their_name(tmp_path: Path) -> None:
    notes = _touch(tmp_path / "notes.txt")
    found = find_images([str(notes), str(tmp_path / "missing.jpg")])
    assert found.files == (str(notes), str(tmp_path / "missing.jpg"))  # missing: fails later, with a row
    assert not found.walked


def test_symlink_loops_end_and_links_are_followed(tmp_path: Path) -> None:
    _touch(tmp_path / "root" / "a.jpg")
    _touch(tmp_path / "root" / "sub" / "b.jpg")
    _touch(tmp_path / "elsewhere" / "c.png")
    # sub/loop -> root: a cycle. Only one, so a broken walk stops at the OS's symlink depth limit
    # (and fails this test) instead of branching exponentially.
    (tmp_path / "root" / "sub" / "loop").symlink_to(tmp_path / "root")
    (tmp_path / "root" / "linked").symlink_to(tmp_path / "elsewhere")
    (tmp_path / "root" / "dangling.jpg").symlink_to(tmp_path / "gone.jpg")
    found = find_images([str(tmp_path / "root")])
    names = sorted(Path(f).name for f in found.files)
    assert names == ["a.jpg", "b.jpg", "c.png", "dangling.jpg"]  # each real folder once; the dangling link kept


def test_stdin_paths_are_expanded_like_arguments(tmp_path: Path) -> None:
    one = _touch(tmp_path / "one.jpg")
    _touch(tmp_path / "dir" / "two.png")
    stdin = io.StringIO(f"{one}\n\n{tmp_path / 'dir'}\r\nname with spaces.jpg\n")
    found = find_images(["-", str(one)], stdin)
    assert found.files == (str(one), str(tmp_path / "dir" / "two.png"), "name with spaces.jpg", str(one))
    assert found.walked
    assert read_path_list(io.StringIO("a\n  \nb")) == ["a", "b"]


def test_unreadable_folder_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _touch(tmp_path / "locked" / "x.jpg")
    _touch(tmp_path / "open" / "y.jpg")
    real_scandir = os.scandir

    def scandir(path: str) -> object:  # chmod 0 does not stop root, so deny the folder here
        if Path(path).name == "locked":
            raise PermissionError(13, "Permission denied", path)
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    found = find_images([str(tmp_path)])
    assert found.unreadable == ((str(tmp_path / "locked"), "cannot list folder: Permission denied"),)
    assert found.files == (str(tmp_path / "open" / "y.jpg"),)
