"""User-facing errors.

Every error that a user can cause (a missing file, a corrupt checkpoint, a bad option) is raised as
:class:`LandscapeError`. The CLI turns it into one line on stderr and a non-zero exit status; the
Python API lets it propagate like any exception.
"""


class LandscapeError(Exception):
    """An error caused by the user's input, reported as one clear line."""

    exit_code = 2


class DataNotFoundError(LandscapeError):
    """A dataset could not be found locally and could not be downloaded."""
