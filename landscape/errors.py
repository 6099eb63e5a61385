"""User-facing errors.

Every error that a user can cause (a missing file, a corrupt checkpoint, a bad option) is raised as
:class:`LandscapeError`. The CLI turns it into one line on stderr and a non-zero exit status; the
Python API lets it propagate like any exception. Messages name the argument at fault in backquotes
(`n_examples`); the CLI prints its flag instead (--n-examples).
"""


class LandscapeError(Exception):
    """An error caused by the user's input, reported as one clear line."""

    exit_code = 2

    def cli_message(self) -> str:
        """The message as the CLI prints it (before argument names become flags)."""
        return str(self)


class DataNotFoundError(LandscapeError):
    """A dataset could not be found locally and could not be downloaded."""
