"""Stop the recipe as a whole: run.sh and everything it starts, in one process group.

bash defers its traps while a foreground step runs, and a signal sent to run.sh's pid alone
(``kill PID``, a batch system's SIGTERM) never reaches the steps: killed, run.sh left its
fairseq-train training on, and a re-run trained into the same folder beside it. So run.sh
starts itself again under this supervisor (``exec``: the same pid the caller knows). The
recipe runs in a process group of its own; SIGTERM, SIGINT or SIGHUP to the supervisor goes
to the whole group (a Ctrl-C reaches the steps as SIGINT, as before; a hang-up as SIGTERM, which
the ``--jobs`` scheduler handles), and the supervisor waits
until every process of the group has ended, ``GRACE_S`` at most, then SIGKILLs what is left (a
second signal does that at once). Processes the recipe leaves running when it ends on its own
are ended the same way. ``--jobs`` runs, each in a group of its own, are ended by the scheduler
(``jobs.py``), which gets the signal with the group.

Exit status: the recipe's; 128 + N when stopped by signal N.

Usage (run.sh, first thing)::

    python -m fairseq_mgcm.recipe.supervise COMMAND ...
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

__all__ = ["ENV", "GRACE_S", "group_members", "main", "supervise"]

ENV = "MGCM_RECIPE_SUPERVISED"
"""Set in the recipe's environment: run.sh under the supervisor does not start another."""
GRACE_S = 30.0
"""How long a stopped step may take to end (fairseq-train writes its telemetry at exit);
``MGCM_STOP_GRACE_S`` in the environment sets another."""
_POLL_S = 0.05
_STOPS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def log(message: str) -> None:
    """One line on stderr in run.sh's log format."""
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} (supervise.py) {message}", file=sys.stderr,
          flush=True)


class _Stop(Exception):
    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise(signum: int, frame: FrameType | None) -> None:
    raise _Stop(signum)


def group_members(pgid: int) -> list[int]:
    """The live processes (not zombies) of process group ``pgid``."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":  # fields 3 (state) and 5 (pgrp)
            members.append(int(entry.name))
    return members


def _signal_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        pass


def _end_group(child: subprocess.Popen[bytes], signum: int | None, grace: float) -> None:
    """Send ``signum`` (if any) to the child's group, then wait until the child has exited and
    the group is empty; SIGKILL the group after ``grace`` seconds or at a further signal."""
    if signum is not None:
        _signal_group(child.pid, signum)
    deadline = time.monotonic() + grace
    killed = False
    while True:
        try:
            if child.poll() is not None and not group_members(child.pid):
                return
            if not killed and time.monotonic() > deadline:
                log(f"the recipe's processes did not end within {grace:.0f} s: SIGKILL")
                _signal_group(child.pid, signal.SIGKILL)
                killed = True
            time.sleep(_POLL_S)
        except _Stop:
            if not killed:
                log("stopped again: SIGKILL")
                _signal_group(child.pid, signal.SIGKILL)
                killed = True


def supervise(command: list[str], grace: float = GRACE_S) -> int:
    """Run ``command`` in a process group of its own; see the module docstring."""
    handlers = {s: signal.signal(s, _raise) for s in _STOPS}
    try:
        child: subprocess.Popen[bytes] | None = None
        try:
            child = subprocess.Popen(command, env=dict(os.environ, **{ENV: "1"}),
                                     process_group=0)
            code = child.wait()
        except _Stop as stop:
            if child is None:  # stopped before the recipe started
                return 128 + stop.signum
            log(f"stopped by {signal.Signals(stop.signum).name}: ending the recipe's processes")
            _end_group(child, signal.SIGINT if stop.signum == signal.SIGINT else signal.SIGTERM,
                       grace)
            return 128 + stop.signum
        left = group_members(child.pid)
        if left:
            log(f"ending {len(left)} process(es) the recipe left running (pids "
                f"{' '.join(map(str, left))})")
            _end_group(child, signal.SIGTERM, grace)
        return 128 - code if code < 0 else code
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        print("usage: python -m fairseq_mgcm.recipe.supervise COMMAND ...", file=sys.stderr)
        return 2
    grace = os.environ.get("MGCM_STOP_GRACE_S", str(GRACE_S))
    try:
        if not float(grace) >= 0:
            raise ValueError
    except ValueError:
        print(f"supervise: MGCM_STOP_GRACE_S={grace!r}: expected seconds >= 0", file=sys.stderr)
        return 2
    try:
        return supervise(argv, float(grace))
    except _Stop as stop:  # after the recipe ended, while it was being reaped
        return 128 + stop.signum


if __name__ == "__main__":
    sys.exit(main())
