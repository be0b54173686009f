"""The export tool's own exception types, in the runtime's hierarchy: cifar_runtime.exitcodes gives each its exit
code (2 for bad input, 3 for a failed check), as for every error of cifar-train and cifar-runtime.
"""

from cifar_runtime import CheckFailed as RuntimeCheckFailed
from cifar_runtime import UsageError, one_line

__all__ = ["CheckFailed", "ExportError", "one_line"]


class ExportError(UsageError):
    """Bad input the user can fix: missing/corrupt file, wrong architecture, unwritable folder, bad data or flags."""


class CheckFailed(ExportError, RuntimeCheckFailed):
    """A parity or accuracy check failed: the file was kept under a FAILED name and not published (exit 3)."""
