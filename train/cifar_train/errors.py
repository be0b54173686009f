"""Errors a user can cause (bad data, missing weights, bad checkpoint); the CLI prints them as one line."""


class UserError(Exception):
    """A problem the user can fix; the message says how."""
