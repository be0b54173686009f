"""The export tool's own exception types. The CLI prints each as one line and exits with its code."""


class ExportError(Exception):
    """Bad input the user can fix: missing/corrupt checkpoint, wrong architecture, unwritable folder, bad data."""

    exit_code = 1


class CheckFailed(ExportError):
    """A parity or accuracy check failed: the file was kept under a FAILED name and not published."""

    exit_code = 3
