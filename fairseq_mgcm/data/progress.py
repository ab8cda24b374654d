"""A one-line-every-N progress report with rate and ETA, written to stderr.

Long data jobs (hours on the real MuST-C) need to show they are alive without a progress-bar
dependency or output that floods a log file.
"""
import sys
import time
from typing import TextIO


def _fmt_seconds(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h:d}:{m:02d}:{s:02d}"


class Progress:
    """Counts work items and prints ``<label> i/total (rate/s, ETA h:mm:ss)`` every ``every``."""

    def __init__(
        self, label: str, total: int, unit: str = "utt", every: int = 100,
        stream: TextIO | None = None,
    ) -> None:
        self._label = label
        self._total = total
        self._unit = unit
        self._every = max(1, every)
        self._stream = stream if stream is not None else sys.stderr
        self._done = 0
        self._next_report = self._every
        self._start = time.monotonic()

    def update(self, n: int = 1) -> None:
        self._done += n
        if self._done >= self._next_report and self._done < self._total:
            self._report()
            while self._next_report <= self._done:
                self._next_report += self._every

    def close(self) -> None:
        """Print the final line (always, so short jobs still say what they did)."""
        self._report(final=True)

    def _report(self, final: bool = False) -> None:
        elapsed = time.monotonic() - self._start
        rate = self._done / elapsed if elapsed > 0 else 0.0
        if final:
            tail = f"done in {_fmt_seconds(elapsed)}"
        else:
            eta = (self._total - self._done) / rate if rate > 0 else 0.0
            tail = f"ETA {_fmt_seconds(eta)}"
        print(
            f"[{self._label}] {self._done}/{self._total} {self._unit} "
            f"({rate:.1f} {self._unit}/s, {tail})",
            file=self._stream, flush=True,
        )
