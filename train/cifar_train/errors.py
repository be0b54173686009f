"""Errors a user can cause (bad data, missing weights, bad checkpoint); the CLI prints them as one line, exit 2."""

from cifar_runtime.errors import UsageError


class UserError(UsageError):
    """A problem the user can fix; the message says how (cifar_runtime.exitcodes maps it to exit 2)."""
