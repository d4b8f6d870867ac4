"""Exceptions with the exit codes of the command-line contract (2: bad usage, 1: other failure)."""

from __future__ import annotations


class RsSslError(Exception):
    """A failure the user can act on; the CLI prints its message as one line and exits 1."""

    exit_code = 1

    def __init__(self, message: str = "", *args):
        # A DataLoader worker's exception is re-raised in the main process as
        # `type(e)("Caught ... in DataLoader worker process N.\nOriginal Traceback ...")`: keep the
        # worker's own message (its last line), which names the file, so the CLI still prints one line.
        if (
            isinstance(message, str)
            and message.startswith("Caught ")
            and "\nOriginal Traceback" in message
        ):
            last = message.rstrip().rsplit("\n", 1)[-1]
            message = (
                last.split(": ", 1)[1]
                if last.startswith(f"{type(self).__module__}.") and ": " in last
                else last
            )
        super().__init__(message, *args)


class UsageError(RsSslError):
    """A bad option or value; the CLI exits with code 2."""

    exit_code = 2


class DataError(RsSslError):
    """Unreadable or inconsistent input data; the message names the file and the problem."""

    exit_code = 1
