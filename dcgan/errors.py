"""Errors that carry a message meant for the user (the CLI prints them without a traceback). Light: no TF import."""


class DcganError(Exception):
    """Base class: a clear, user-facing failure."""


class DataError(DcganError, ValueError):
    """The training/eval data cannot be used; the message says which path and why."""


class RunDirError(DcganError, ValueError):
    """A run directory is not what the command needs (not a run, or already a run)."""
