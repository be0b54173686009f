"""Expand command-line paths into image files: files as given, folders walked recursively.

The walk follows symlinks but enters each real folder once (by device and inode), so symlink loops end.
Files named explicitly are taken whatever their extension; inside folders only image extensions count.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TextIO

IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".gif", ".bmp", ".dib", ".tif", ".tiff", ".webp"}
    | {".ppm", ".pgm", ".pbm", ".pnm", ".tga", ".ico"}
)
STDIN = "-"


@dataclass(frozen=True)
class Inputs:
    """Image files to classify, in order, and the folders that could not be listed."""

    files: tuple[str, ...]
    unreadable: tuple[tuple[str, str], ...]  # (folder, one-line reason)
    walked: bool  # a folder or stdin was expanded: worth a progress bar


def read_path_list(stream: TextIO) -> list[str]:
    """Paths from a stream, one per line; blank lines skipped."""
    return [line.rstrip("\r\n") for line in stream if line.strip()]


def find_images(args: Iterable[str], stdin: TextIO | None = None) -> Inputs:
    """Expand files, folders and `-` (paths read from `stdin`, one per line) into image files."""
    args = list(args)
    if STDIN in args and stdin is not None:
        args = [path for arg in args for path in (read_path_list(stdin) if arg == STDIN else [arg])]
        walked = True
    else:
        walked = False
    files: list[str] = []
    unreadable: list[tuple[str, str]] = []
    seen: set[tuple[int, int]] = set()  # (st_dev, st_ino) of every folder entered
    for arg in args:
        if os.path.isdir(arg):
            _walk(arg, files, unreadable, seen)
            walked = True
        else:
            files.append(arg)  # missing or unreadable files fail at decoding, with their own error row
    return Inputs(tuple(files), tuple(unreadable), walked)


def _walk(root: str, files: list[str], unreadable: list[tuple[str, str]], seen: set[tuple[int, int]]) -> None:
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            stat = os.stat(folder)
            if (stat.st_dev, stat.st_ino) in seen:
                continue  # a symlink loop, or a folder reached twice through links: walk it once
            seen.add((stat.st_dev, stat.st_ino))
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as e:
            unreadable.append((folder, f"cannot list folder: {e.strerror or type(e).__name__}"))
            continue
        subfolders = []
        for entry in entries:
            if _is_dir(entry):
                subfolders.append(entry.path)
            elif os.path.splitext(entry.name)[1].lower() in IMAGE_SUFFIXES:
                files.append(entry.path)  # includes broken symlinks: they fail later, visibly
        stack.extend(reversed(subfolders))  # depth-first, in name order


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()  # follows symlinks
    except OSError:
        return False
