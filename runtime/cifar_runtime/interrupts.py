"""Ctrl-C between steps, never inside one: a row is written and counted, or neither.

Python raises KeyboardInterrupt between any two bytecodes, so without this a Ctrl-C landing after a row's write but
before its count makes "N rows written" one short of the file.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType


class HeldInterrupts:
    """While active, Ctrl-C inside a `step()` block is raised when the block ends; elsewhere it is raised at once.

    Active only in the main thread with Python's default SIGINT handler: an application that installed its own
    handler keeps it, and other threads never receive signals.
    """

    def __init__(self) -> None:
        self._in_step = False
        self._pending = False
        self._previous: object = None

    def __enter__(self) -> HeldInterrupts:
        main = threading.current_thread() is threading.main_thread()
        if main and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)  # type: ignore[arg-type]
            self._previous = None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self._in_step:
            self._pending = True
        else:
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def step(self) -> Iterator[None]:
        """A block that Ctrl-C does not cut in two: an interrupt arriving inside it is raised after it."""
        self._in_step = True
        try:
            yield
        finally:
            self._in_step = False
        if self._pending:
            self._pending = False
            raise KeyboardInterrupt
