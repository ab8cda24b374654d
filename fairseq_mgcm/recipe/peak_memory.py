"""Run a command and record its peak memory, so methods can be compared side by side.

The number is the peak resident set size of the largest process the command started
(``RUSAGE_CHILDREN.ru_maxrss``): host memory, which is what a CPU run spends. GPU memory is
not visible here; ``benchmarks/bench_conflict.py`` measures it with ``max_memory_allocated``.
"""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from fairseq_mgcm.atomic_files import write_text

__all__ = ["run_with_peak_memory"]


def run_with_peak_memory(command: list[str], record: str | os.PathLike) -> int:
    """Run ``command``; write ``{peak_rss_mb, wall_s, returncode, command}`` to ``record``."""
    start = time.monotonic()
    returncode = subprocess.call(command)
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    result = {
        "peak_rss_mb": round(peak_kb / 1024, 1),
        "wall_s": round(time.monotonic() - start, 1),
        "returncode": returncode,
        "command": command,
    }
    write_text(Path(record), json.dumps(result, indent=1) + "\n")
    return returncode


def main(argv: list[str] | None = None) -> int:
    """``python -m fairseq_mgcm.recipe.peak_memory RECORD.json -- command ...``"""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) < 3 or argv[1] != "--":
        print("usage: python -m fairseq_mgcm.recipe.peak_memory RECORD.json -- command ...",
              file=sys.stderr)
        return 2
    return run_with_peak_memory(argv[2:], argv[0])


if __name__ == "__main__":
    sys.exit(main())
