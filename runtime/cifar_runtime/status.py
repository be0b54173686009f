"""What the CLI tells people on stderr while and after it runs: a progress bar and a summary line."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TextIO

BAR_WIDTH = 30  # characters
REDRAW_EVERY = 0.2  # seconds


class Progress:
    """A one-line progress bar, redrawn in place at most every REDRAW_EVERY seconds; silent when disabled."""

    def __init__(self, total: int, stream: TextIO, enabled: bool) -> None:
        self.total, self.stream, self.enabled = total, stream, enabled and total > 0
        self.start = time.perf_counter()
        self.last_draw = 0.0

    def update(self, done: int) -> None:
        """Show that `done` of `total` files are finished."""
        now = time.perf_counter()
        if not self.enabled or (now - self.last_draw < REDRAW_EVERY and done < self.total):
            return
        self.last_draw = now
        filled = BAR_WIDTH * done // self.total
        rate = done / max(now - self.start, 1e-9)
        bar = "#" * filled + "-" * (BAR_WIDTH - filled)
        self.stream.write(f"\r[{bar}] {done}/{self.total} {rate:.0f} img/s")
        self.stream.flush()

    def close(self) -> None:
        """End the bar's line so what follows starts on a fresh one."""
        if self.enabled and self.last_draw:
            self.stream.write("\n")
            self.stream.flush()


@dataclass(frozen=True)
class Summary:
    """Counts of one run."""

    files: int  # inputs handled in this run (not counting those skipped by --resume)
    classified: int
    failed: int
    skipped: int  # already classified in the --resume output
    seconds: float  # wall time from the first decode to the last row written
    retried: int = 0  # error rows of the --resume output whose files were tried again
    abstained: int = 0  # classified, but below --min-confidence

    def line(self) -> str:
        """The summary as one line, e.g. '200 files, 199 classified, 1 failed, 812.3 images/s'."""
        rate = self.classified / self.seconds if self.seconds > 0 else 0.0
        skipped = f", {self.skipped} skipped (already in output)" if self.skipped else ""
        retried = f", {self.retried} earlier failures retried" if self.retried else ""
        abstained = f" ({self.abstained} below --min-confidence)" if self.abstained else ""
        return (
            f"{self.files} files, {self.classified} classified{abstained}, {self.failed} failed{skipped}{retried}, "
            f"{rate:.1f} images/s ({self.seconds:.2f} s)"
        )
