"""The errors dilnas raises for bad input (``dilnas.api`` raises them; the commands print them in one line
and exit with status 2)."""

from dilnas.utils.errors import InvalidFileError, UserError

__all__ = ["InvalidFileError", "UserError"]
