"""The one exception type for bad input: the CLI prints its message as one line, exit 2."""


class UserError(Exception):
    """Bad input from the user (a file, a flag, a spec): message says what and where."""
