"""Run a command and record its peak memory, so methods can be compared side by side.

The number is the peak resident set size of the largest process the command started (the
``ru_maxrss`` that ``os.wait4`` reports for that one child and its descendants, so children the
caller ran before do not count): host memory, which is what a CPU run spends. Linux keeps a
process's high-water mark across exec, so the figure is at least the caller's own size at the
fork (about 630 MB for this module's process, which imports torch through the package): fine
for trainings (1.4 GB and up), not for measuring small commands. GPU memory is
not visible here; ``benchmarks/bench_conflict.py`` measures it with ``max_memory_allocated``.

Beside the wall time, the record holds the CPU time the command used (user + system, all its
processes): unlike wall time, it barely changes when other jobs share the cores, so methods
trained one after another on a busy machine can still be compared by cost.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from fairseq_mgcm.atomic_files import write_text

__all__ = ["run_with_peak_memory"]


def run_with_peak_memory(command: list[str], record: str | os.PathLike) -> int:
    """Run ``command`` and add its leg to ``record``.

    The record holds every leg (one per run: a training that was interrupted and resumed has
    several) and, at the top, ``wall_s`` and ``cpu_s`` summed over the legs and
    ``peak_rss_mb`` the largest leg's peak, so a resumed run reports its whole cost, not only
    the last leg's.
    """
    record = Path(record)
    legs = _legs(record)
    start = time.monotonic()
    # close_fds=False: a lock the caller passed down (run_lock.py) stays held by the command
    # itself, so it lasts as long as the training even if the wrappers are killed alone.
    with subprocess.Popen(command, close_fds=False) as proc:
        try:
            # This child's own usage: RUSAGE_CHILDREN would also hold every child the caller
            # (a test session, say) waited for before, and its largest peak.
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:  # as subprocess.call: Ctrl-C here stops the command too
            proc.kill()
            raise
        returncode = proc.returncode = os.waitstatus_to_exitcode(status)
    cpu_s = usage.ru_utime + usage.ru_stime
    legs.append({
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "wall_s": round(time.monotonic() - start, 1),
        "cpu_s": round(cpu_s, 1),
        "returncode": returncode,
        "command": command,
    })
    result = {
        "peak_rss_mb": max(leg["peak_rss_mb"] for leg in legs),
        "wall_s": round(sum(leg["wall_s"] for leg in legs), 1),
        "cpu_s": round(sum(leg.get("cpu_s", 0.0) for leg in legs), 1),
        "returncode": returncode,
        "legs": legs,
    }
    write_text(record, json.dumps(result, indent=1) + "\n")
    return returncode


def _legs(record: Path) -> list[dict]:
    """The legs already recorded (a record from before legs existed counts as one leg)."""
    if not record.is_file():
        return []
    try:
        old = json.loads(record.read_text())
    except json.JSONDecodeError as error:
        message = f"{record}: not a peak-memory record ({error}); remove it to start over"
        raise SystemExit(message) from None
    if "legs" in old:
        return list(old["legs"])
    return [{key: old[key] for key in ("peak_rss_mb", "wall_s", "returncode", "command")
             if key in old}]


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
