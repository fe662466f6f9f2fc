"""The one exception type the CLI turns into a one-line message and exit code 2."""


class DDIError(Exception):
    """A user-facing error: bad input, bad config, unwritable output.

    The message must name the file, key or value at fault and what is allowed.
    """
