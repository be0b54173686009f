"""Exit codes of cifar-infer, cifar-train and cifar-export: the same situation gets the same code in all three.

`MEANINGS` is the one text of the contract: `cifar-infer --help` prints it, and the README's table must match it.
"""

from cifar_runtime.errors import CifarRuntimeError, OutputError, ReaderGone

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
    EXIT_INTERRUPTED: "interrupted (Ctrl-C): one line with the rows written and the --resume command that continues",
    EXIT_READER_GONE: "stdout's reader closed the pipe (e.g. piped into head): stopped quietly, as Unix filters do",
}
