"""The shell commands of a markdown file's ```bash blocks, so tests can run them as written."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_BLOCK = re.compile(r"^```bash\n(.*?)^```", re.S | re.M)


def commands(markdown: Path) -> list[str]:
    """Each command of every bash block: continuation lines joined, comments and blank lines
    dropped, and ``source scripts/setup_env.sh`` (the tests' environment is that one) left out."""
    found = []
    for block in _BLOCK.findall(markdown.read_text(encoding="utf-8")):
        for command in block.replace("\\\n", " ").splitlines():
            command = command.split(" #", 1)[0].strip()
            if command and not command.startswith("#") and command != "source scripts/setup_env.sh":
                found.append(" ".join(command.split()))
    return found


def command_line(markdown: Path, prefix: str) -> str:
    """The command of ``markdown`` equal to ``prefix``, else the one that starts with it."""
    found = commands(markdown)
    matches = [c for c in found if c == prefix] or [c for c in found if c.startswith(prefix)]
    assert len(matches) == 1, f"{markdown}: expected one command starting {prefix!r}: {matches}"
    return matches[0]


def command_starting(markdown: Path, prefix: str) -> list[str]:
    """``command_line(markdown, prefix)`` split into words."""
    return shlex.split(command_line(markdown, prefix))
