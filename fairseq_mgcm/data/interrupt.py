"""SIGINT and SIGTERM as one exception, so that an interrupted data job cleans up after itself.

Python turns SIGINT into ``KeyboardInterrupt`` but lets SIGTERM (``kill``, a batch scheduler)
end the process on the spot, leaving the temporary files of ``atomic_files`` behind. Under
``exit_on_signals`` both unwind the stack instead: every atomic write removes its temporary
file, finished outputs and done-markers stay, and the script prints one line and exits
128 + the signal number (130, 143), as a shell reports a process killed by that signal.
"""
import contextlib
import signal
from collections.abc import Iterator
from types import FrameType

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(BaseException):
    """Raised in the main thread on SIGINT or SIGTERM (a BaseException, like KeyboardInterrupt,
    so that ``except Exception`` blocks do not swallow it)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signal_name = signal.Signals(signum).name
        self.exit_code = 128 + signum


def _raise(signum: int, frame: FrameType | None) -> None:
    for sig in _SIGNALS:  # a second signal must not cut the clean-up of the first short
        signal.signal(sig, signal.SIG_IGN)
    raise Interrupted(signum)


@contextlib.contextmanager
def exit_on_signals() -> Iterator[None]:
    """Raise ``Interrupted`` on SIGINT or SIGTERM inside the block; restore the handlers after.

    A signal that arrives inside a long C call (SentencePiece training) is acted on when the
    call returns.
    """
    previous = {sig: signal.signal(sig, _raise) for sig in _SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
