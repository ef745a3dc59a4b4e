"""The one exception type users see.

A `MinicapError` message says what was wrong and what to do about it; the command line prints it
without a traceback and exits with status 2.
"""


class MinicapError(Exception):
    """A user-facing error: bad input, a missing or corrupt file, an impossible setting."""
