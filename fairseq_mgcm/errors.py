"""The one error type for bad input, and the hook that prints it in one line.

A user who passes a missing checkpoint, a wrong ``--config-yaml`` or ``--waitk 0`` needs the
reason, not 30 lines of fairseq's or SimulEval's stack above it; a bug in our code needs the
stack. :class:`UserError` marks the first kind: its message is one line naming the file, line or
flag to fix. Entry points we own catch it (``prog: error: message``, exit 2); entry points whose
``main`` is fairseq's or SimulEval's (``fairseq-generate``/``fairseq-train --user-dir
fairseq_mgcm``, ``simuleval --agent-class ...WaitkAgent``) get :func:`install_excepthook`, run
when the plugin or the agent is imported: an uncaught :class:`UserError` prints that one line
(exit 1, Python's status for an uncaught exception); every other exception keeps its traceback.

Subclass it together with the builtin a caller may already catch, e.g.
``class CheckpointError(UserError, ValueError)``. Importing this module imports nothing.
"""
from __future__ import annotations

import os
import sys
from collections.abc import Callable
from types import TracebackType
from typing import Any

__all__ = ["BadValue", "MissingFile", "UserError", "install_excepthook", "one_line"]


class UserError(Exception):
    """Bad input the user can fix (a file, a line, a flag); ``str()`` is the one-line reason."""


class MissingFile(UserError, FileNotFoundError):
    """A file the user named (or that a config names) does not exist."""


class BadValue(UserError, ValueError):
    """A flag value or file content the user can fix."""


def one_line(error: BaseException) -> str:
    """The error's message on one line (a message with line breaks is joined with ``; ``)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return "; ".join(lines) or type(error).__name__


def _prog() -> str:
    return os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "python"


Hook = Callable[[type[BaseException], BaseException, TracebackType | None], Any]


def _hook(previous: Hook) -> Hook:
    def excepthook(kind: type[BaseException], error: BaseException,
                   trace: TracebackType | None) -> None:
        if isinstance(error, UserError):
            print(f"{_prog()}: error: {one_line(error)}", file=sys.stderr, flush=True)
            return
        previous(kind, error, trace)

    excepthook.__fairseq_mgcm__ = True  # type: ignore[attr-defined]
    return excepthook


def install_excepthook() -> None:
    """Print an uncaught :class:`UserError` as ``<prog>: error: <message>`` (idempotent); any
    other exception goes to the hook that was there before (the traceback)."""
    if not getattr(sys.excepthook, "__fairseq_mgcm__", False):
        sys.excepthook = _hook(sys.excepthook)
