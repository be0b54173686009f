"""Expand command-line paths into image files: files as given, folders walked recursively.

The walk follows symlinks but enters each real folder once (by device and inode), so symlink loops end.
Files named explicitly are taken whatever their extension; inside folders only image extensions count.
With a Shard, only this shard's part is kept, by the key the shard module describes.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TextIO

from cifar_runtime.shard import Shard

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
    found: int = 0  # files and unreadable folders before a shard took its part


def read_path_list(stream: TextIO) -> list[str]:
    """Paths from a stream, one per line; blank lines skipped."""
    return [line.rstrip("\r\n") for line in stream if line.strip()]


def find_images(args: Iterable[str], stdin: TextIO | None = None, shard: Shard | None = None) -> Inputs:
    """Expand files, folders and `-` (paths read from `stdin`, one per line) into image files."""
    args = list(args)
    if STDIN in args and stdin is not None:
        args = [path for arg in args for path in (read_path_list(stdin) if arg == STDIN else [arg])]
        walked = True
    else:
        walked = False
    found = _Found(shard)
    seen: set[tuple[int, int]] = set()  # (st_dev, st_ino) of every folder entered
    for arg in args:
        if os.path.isdir(arg):
            _walk(arg, found, seen)
            walked = True
        else:
            found.file(arg, arg)  # missing or unreadable files fail at decoding, with their own error row
    return Inputs(tuple(found.files), tuple(found.unreadable), walked, found.count)


class _Found:
    """What the expansion found, keeping only the shard's part."""

    def __init__(self, shard: Shard | None) -> None:
        self.shard = shard
        self.files: list[str] = []
        self.unreadable: list[tuple[str, str]] = []
        self.count = 0

    def file(self, path: str, key: str) -> None:
        self.count += 1
        if self.shard is None or self.shard.takes(key):
            self.files.append(path)

    def folder_error(self, path: str, key: str, why: str) -> None:
        self.count += 1
        if self.shard is None or self.shard.takes(key):
            self.unreadable.append((path, why))


def _walk(root: str, found: _Found, seen: set[tuple[int, int]]) -> None:
    stack = [(root, "")]  # (folder, its path relative to root with "/" separators: the shard key's prefix)
    while stack:
        folder, rel = stack.pop()
        try:
            stat = os.stat(folder)
            if (stat.st_dev, stat.st_ino) in seen:
                continue  # a symlink loop, or a folder reached twice through links: walk it once
            seen.add((stat.st_dev, stat.st_ino))
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as e:
            found.folder_error(folder, rel.rstrip("/") or ".", f"cannot list folder: {e.strerror or type(e).__name__}")
            continue
        subfolders = []
        for entry in entries:
            if _is_dir(entry):
                subfolders.append((entry.path, rel + entry.name + "/"))
            elif os.path.splitext(entry.name)[1].lower() in IMAGE_SUFFIXES:
                found.file(entry.path, rel + entry.name)  # includes broken symlinks: they fail later, visibly
        stack.extend(reversed(subfolders))  # depth-first, in name order


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()  # follows symlinks
    except OSError:
        return False


def input_at(output: str | os.PathLike[str], args: Iterable[str], files: Iterable[str]) -> str | None:
    """The input that `output` would write over, or None: an input file that is the same file (by device and
    inode, so through any link or spelling), or an image file inside a folder given as input (another shard's)."""
    try:
        out = os.stat(output)
    except OSError:
        return None  # nothing there yet: no input can be it
    for path in files:
        try:
            st = os.stat(path)
        except OSError:
            continue
        if (st.st_dev, st.st_ino) == (out.st_dev, out.st_ino):
            return path
    real = os.path.realpath(output)
    if os.path.splitext(real)[1].lower() in IMAGE_SUFFIXES:
        for arg in args:
            if arg != STDIN and os.path.isdir(arg) and real.startswith(os.path.join(os.path.realpath(arg), "")):
                return real
    return None
