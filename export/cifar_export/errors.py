"""The export tool's own exception types. The CLI prints each as one line and exits with its code.

Errors from the other packages (cifar_train.UserError: a bad checkpoint or data folder; cifar_runtime's
CifarRuntimeError: an unloadable model) are not re-wrapped: the CLI treats them as bad input, like ExportError.
"""

from cifar_runtime import EXIT_CHECK_FAILED, EXIT_USAGE, one_line

__all__ = ["CheckFailed", "ExportError", "one_line"]


class ExportError(Exception):
    """Bad input the user can fix: missing/corrupt file, wrong architecture, unwritable folder, bad data or flags."""

    exit_code = EXIT_USAGE


class CheckFailed(ExportError):
    """A parity or accuracy check failed: the file was kept under a FAILED name and not published."""

    exit_code = EXIT_CHECK_FAILED
