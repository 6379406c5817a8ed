"""The one exception type that command-line entry points turn into a one-line message."""


class UserError(Exception):
    """A problem with the user's input (a file, a config value, an argument).

    Entry points print it as one line on stderr and exit with status 2, without a traceback.
    The message must name the file, field or value at fault and what is allowed.
    """
