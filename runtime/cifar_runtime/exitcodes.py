"""Exit codes of cifar-infer, cifar-ray, cifar-train and cifar-export: the same situation gets the same code in all.

`MEANINGS` is the one text of the contract: every CLI's --help prints it, and the README's table must match it.
`user_errors` is the one path from an error a user can fix to its line on stderr and its exit code.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

from cifar_runtime.errors import CheckFailed, CifarRuntimeError, OutputError, ReaderGone, one_line
from cifar_runtime.text import terminal_safe

EXIT_OK = 0
EXIT_PARTIAL = 1
EXIT_USAGE = 2
EXIT_CHECK_FAILED = 3
EXIT_OUTPUT_FAILED = 4
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report a process killed by Ctrl-C
EXIT_READER_GONE = 141  # 128 + SIGPIPE, as shells report `yes | head`'s yes


def error_exit_code(e: CifarRuntimeError) -> int:
    """The code for one of our errors: a failed write while running is 4, everything else the user can fix is 2."""
    if isinstance(e, ReaderGone):
        return EXIT_READER_GONE
    if isinstance(e, CheckFailed):
        return EXIT_CHECK_FAILED
    return EXIT_OUTPUT_FAILED if isinstance(e, OutputError) else EXIT_USAGE


MEANINGS: dict[int, str] = {
    EXIT_OK: "success",
    EXIT_PARTIAL: (
        "partial: some inputs could not be read; each has an error row, all others were classified and written"
    ),
    EXIT_USAGE: (
        "usage or input error: bad flags or values, a missing, unreadable or unloadable file (model, checkpoint, "
        "data), an unwritable output location; one line on stderr"
    ),
    EXIT_CHECK_FAILED: "a check failed (export parity or accuracy gate); not used by cifar-infer",
    EXIT_OUTPUT_FAILED: (
        "output could not be written while running (disk full, I/O error on the output or stdout); one line on stderr"
    ),
    EXIT_INTERRUPTED: "interrupted (Ctrl-C): one line saying what was written and, where it can resume, the command "
    "that continues",
    EXIT_READER_GONE: "stdout's reader closed the pipe (e.g. piped into head): stopped quietly, as Unix filters do",
}


def say_error(prog: str, e: BaseException) -> None:
    """One line on stderr, `PROG: error: what happened and what to do`, safe for any terminal."""
    print(terminal_safe(f"{prog}: error: {one_line(e)}"), file=sys.stderr, flush=True)


@contextlib.contextmanager
def user_errors(prog: str, interrupted: str = "interrupted") -> Iterator[None]:
    """Errors a user can fix become one line and their exit code (SystemExit); Ctrl-C says `interrupted` and
    exits 130. Anything else is a bug, and keeps its traceback."""
    try:
        yield
    except CifarRuntimeError as e:
        say_error(prog, e)
        raise SystemExit(error_exit_code(e)) from None
    except KeyboardInterrupt:
        print(terminal_safe(f"{prog}: {interrupted}"), file=sys.stderr, flush=True)
        raise SystemExit(EXIT_INTERRUPTED) from None
