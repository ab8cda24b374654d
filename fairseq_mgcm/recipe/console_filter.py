"""Split a command's output: every byte to a log file, the terminal copy without fairseq's noise.

Usage: ``COMMAND 2>&1 | python -m fairseq_mgcm.recipe.console_filter LOG``

Input: the command's output on stdin. Output: LOG, appended, every line as it arrives (what
``tee -a LOG`` wrote); stdout, the same lines except fairseq's config dump, its model dump (the
``print(model)`` block), the tensorboardX notice fairseq logs before it loads the plugin, and the
warnings in ``fairseq_mgcm/console.py`` (with their source line). ``MGCM_VERBOSE=1``: stdout
gets everything. Ctrl-C is left to the command: this program reads on until the command closes
the pipe, so the log keeps its last words; exit status 0 (run.sh takes the command's).
"""
from __future__ import annotations

import argparse
import os
import re
import signal
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from fairseq_mgcm.console import NOISY_WARNINGS, TENSORBOARDX_NOTICE, verbose

# A logging record as fairseq_cli formats it ("2024-01-31 12:00:00 | INFO | name | message")
# or as logging's default format does ("INFO:name:message").
_RECORD = re.compile(
    r"^(?:\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \| [A-Z]+ \| (?P<name>[\w.]+) \| "
    r"|(?:DEBUG|INFO|WARNING|ERROR|CRITICAL):(?P<name2>[\w.]+):)(?P<message>.*)$"
)
_MODEL_OPENS = re.compile(r"^[A-Za-z_]\w*\($")  # "WaitkS2TTransformerModel("
_WARNING = re.compile(r"^\S+:\d+: (?P<category>\w+): (?P<message>.*)$")
_WARNING_LINES = 4  # the longest message continuation + source line of the warnings listed
_NOISY = [(category.__name__, re.compile(message, re.I)) for category, message in NOISY_WARNINGS]


def _noise(line: str) -> str | None:
    """What kind of noise ``line`` opens: "line", "model" (a block follows), "warning" (its
    source line follows), or None."""
    record = _RECORD.match(line)
    if record:
        name = record["name"] or record["name2"]
        message = record["message"]
        if message.startswith(TENSORBOARDX_NOTICE):
            return "line"
        if name.startswith("fairseq_cli"):
            if message.startswith("{'_name':"):
                return "line"
            if _MODEL_OPENS.match(message):
                return "model"
        return None
    warning = _WARNING.match(line)
    if warning and any(category == warning["category"] and pattern.match(warning["message"])
                       for category, pattern in _NOISY):
        return "warning"
    return None


def console_lines(lines: Iterable[str]) -> Iterator[str]:
    """The lines of ``lines`` (newline-free) a person should see on the terminal."""
    state = None  # "model": inside a model dump; "warning": after a noisy warning's header
    left = 0  # lines a warning's message may still span before its source line
    for line in lines:
        if state == "model":
            if line.startswith(" "):
                continue
            state = None
            if line == ")":
                continue
        elif state == "warning":
            if not (_RECORD.match(line) or _WARNING.match(line)) and left > 0:
                left -= 1
                if line.startswith("  ") or left == 0:
                    state = None  # the source line ends the warning
                continue
            state = None
        kind = _noise(line)
        left = _WARNING_LINES
        if kind is None:
            yield line
        elif kind != "line":
            state = kind


def split(stream: BinaryIO, log: BinaryIO, terminal: BinaryIO, show_all: bool) -> None:
    """Copy ``stream`` to ``log`` line by line and its console lines to ``terminal``."""

    def decoded() -> Iterator[str]:
        for raw in stream:
            log.write(raw)
            log.flush()
            yield raw.decode("utf-8", "replace").rstrip("\r\n")

    lines = decoded()
    for line in (lines if show_all else console_lines(lines)):
        terminal.write(line.encode("utf-8") + b"\n")
        terminal.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Append stdin to LOG; print it without fairseq's dumps and known noise.")
    parser.add_argument("log", type=Path, help="log file, appended (created if missing)")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the command decides; we drain the pipe
    args.log.parent.mkdir(parents=True, exist_ok=True)
    with open(args.log, "ab") as log:
        try:
            split(sys.stdin.buffer, log, sys.stdout.buffer, show_all=verbose())
        except BrokenPipeError:  # the terminal side went away: keep logging
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit
            for raw in sys.stdin.buffer:
                log.write(raw)
    return 0


if __name__ == "__main__":
    sys.exit(main())
