"""Write a whole file or nothing, for every file any command of this repository writes: the content goes to a
temporary file beside the target, is flushed to disk (fsync), and only then renamed over it. Readers see the old
file or the new one, never half of one, even after a crash or power loss.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TextIO


def replaceable(path: Path) -> bool:
    """True when `path` may be replaced by a rename: absent or a regular file (not /dev/full, a FIFO, a tty)."""
    return not path.exists() or Path(os.path.realpath(path)).is_file()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary path beside `path` for the caller to write (torch.save, savefig, ...); when the block ends it is
    fsynced and renamed over `path`. On any error `path` is untouched and the temporary file removed."""
    target = Path(os.path.realpath(path))  # through a symlink, replace the file it points to, not the link
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}.tmp")  # unique across threads and processes
    try:
        yield tmp  # created by the writer: mode 0o666 & ~umask, like any file the user writes
        with tmp.open("rb+") as f:
            os.fsync(f.fileno())  # the rename must not publish a file whose data is still in flight
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str]) -> Iterator[TextIO]:
    """A UTF-8 text stream whose content replaces `path` when the block ends; on any error `path` is untouched."""
    with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8", newline="") as stream:
        yield stream


def write_atomically(path: str | os.PathLike[str], write: Callable[[Path], object]) -> None:
    """Call write(tmp) inside atomic_path: the form for writers that take a path."""
    with atomic_path(path) as tmp:
        write(tmp)
