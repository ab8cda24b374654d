"""The one exception type of the data pipeline.

Scripts catch it and print its message without a traceback (exit code 2): it always describes
bad *input* (a file, line or flag the user can fix), never a bug in our code.
"""


class CorpusError(Exception):
    """Bad input to the corpus maker or the MuST-C preparation; the message names file and line."""


def where(path: object, line: int | None = None) -> str:
    """Format a location as ``path:line`` (or just ``path``) for error messages."""
    return f"{path}:{line}" if line is not None else f"{path}"
