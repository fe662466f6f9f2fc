"""The one exception type the CLI turns into a one-line message and exit code 2, and the one
warning type it prints as one line (`ddi-energy: warning: ...`)."""

from __future__ import annotations

import warnings


class DDIError(Exception):
    """A user-facing error: bad input, bad config, unwritable output.

    The message must name the file, key or value at fault and what is allowed.
    """


class DDIWarning(UserWarning):
    """Something the user should know, but the work goes on (e.g. a table edited by hand)."""


def warn(message: str) -> None:
    """Warn once per message, through `warnings` so Python callers can filter or raise it."""
    warnings.warn(message, DDIWarning, stacklevel=3)
