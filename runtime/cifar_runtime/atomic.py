"""Write a whole file or nothing: into a temporary file beside it, renamed over it only when complete."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO


def replaceable(path: Path) -> bool:
    """True when `path` may be replaced by a rename: absent or a regular file (not /dev/full, a FIFO, a tty)."""
    return not path.exists() or Path(os.path.realpath(path)).is_file()


@contextlib.contextmanager
def atomic_write(path: Path) -> Iterator[TextIO]:
    """A UTF-8 text stream whose content replaces `path` when the block ends; on any error `path` is untouched."""
    target = Path(os.path.realpath(path))  # through a symlink, replace the file it points to, not the link
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    stream = tmp.open("w", encoding="utf-8", newline="")  # mode 0o666 & ~umask, like any file the user writes
    try:
        with stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())  # the rename must not publish a file whose data is still in flight
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
