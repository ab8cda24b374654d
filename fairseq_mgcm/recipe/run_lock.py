"""One writer per run folder: a training holds a lock on it while it runs.

A recipe killed with its training still running (or the same recipe started twice) used to
train a second fairseq-train into the same folder beside the first: checkpoints and telemetry
written by both, a crash, and a later re-run that marked the run trained with telemetry
windows missing. So run.sh starts each training through this module, which takes an exclusive
``flock`` on a lock file in the run folder, records its owner in it (host, pid, command, since
when, as one JSON line), runs the command with the lock's descriptor inherited (the lock lasts
as long as the training does, even if this wrapper is killed alone) and empties the file at the
end. A second writer gets one line naming the owner and exit 1, before it writes anything.

A lock whose owner died without emptying it (SIGKILL, a machine that went down) is stale:
``flock`` is free again (the kernel, or the NFS server once the dead client's lease ends,
released it), so it is taken over with a log line naming the old owner. Where the file system
has no ``flock`` (``ENOLCK``), the record decides: an owner on this host whose pid is gone (or
is now another process) is stale; an owner on another host is taken to be alive.

Usage (run.sh; exits with the command's status)::

    python -m fairseq_mgcm.recipe.run_lock RUN_DIR/.train.lock -- COMMAND ...
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType

__all__ = ["Locked", "Owner", "hold", "main", "run_locked"]

_NO_FLOCK = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL}
_SHOWN_COMMAND = 160  # characters of the owner's command in the one-line error


def log(message: str) -> None:
    """One line on stderr in run.sh's log format."""
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} (run_lock.py) {message}", file=sys.stderr,
          flush=True)


def _start_ticks(pid: int) -> int | None:
    """The start time of ``pid`` in clock ticks since boot (tells a reused pid apart)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[19])  # field 22 of stat(5); fields[0] is field 3


@dataclass(frozen=True)
class Owner:
    """Who holds a lock, as recorded in its file."""

    host: str
    pid: int
    command: str
    since: str
    start_ticks: int | None = None

    @classmethod
    def me(cls, command: list[str]) -> Owner:
        pid = os.getpid()
        return cls(socket.gethostname(), pid, shlex.join(command),
                   time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), _start_ticks(pid))

    @classmethod
    def read(cls, fd: int) -> Owner | None:
        """The owner recorded in the open lock file, or None (empty, unreadable or torn)."""
        text = os.pread(fd, 1 << 16, 0).decode("utf-8", "replace").strip()
        try:
            entry = json.loads(text)
            return cls(str(entry["host"]), int(entry["pid"]), str(entry["command"]),
                       str(entry["since"]), entry.get("start_ticks"))
        except (ValueError, KeyError, TypeError):
            return None

    def describe(self) -> str:
        command = self.command
        if len(command) > _SHOWN_COMMAND:
            command = command[:_SHOWN_COMMAND - 3] + "..."
        return f"host {self.host}, pid {self.pid}, since {self.since} ({command})"

    def alive(self) -> bool:
        """Whether the owner may still run: always True for another host (no way to tell)."""
        if self.host != socket.gethostname():
            return True
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        ticks = _start_ticks(self.pid)
        return self.start_ticks is None or ticks is None or ticks == self.start_ticks


class Locked(Exception):
    """Another process holds the lock; the message is the one-line error for the user."""

    def __init__(self, path: Path, owner: Owner | None) -> None:
        who = owner.describe() if owner else "an owner that has not recorded itself yet"
        super().__init__(f"{path.parent} is being written by another training: {who}; "
                         f"wait for it to end or stop it (lock file {path})")
        self.owner = owner


def _flock(fd: int) -> bool | None:
    """Try the exclusive flock: True if taken, False if held elsewhere, None if unsupported."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError as error:
        if error.errno in _NO_FLOCK:
            return None
        raise
    return True


@contextmanager
def hold(path: str | os.PathLike[str], command: list[str]) -> Iterator[int]:
    """Hold the lock at ``path`` (its descriptor is yielded, to pass to a child) and empty the
    file on leaving. Raises :class:`Locked` if a live owner holds it."""
    path = Path(os.path.abspath(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        taken = _flock(fd)
        previous = Owner.read(fd)
        if taken is False or (taken is None and previous is not None and previous.alive()):
            raise Locked(path, previous)
        if previous is not None:
            log(f"taking over the stale lock {path} of {previous.describe()}: it is gone")
        me = Owner.me(command)
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(asdict(me)) + "\n").encode(), 0)
        os.fsync(fd)
        try:
            yield fd
        finally:
            os.ftruncate(fd, 0)  # released with a clean exit: the next taker is not stale
    finally:
        os.close(fd)


def run_locked(path: str | os.PathLike[str], command: list[str]) -> int:
    """Run ``command`` holding the lock at ``path``; its exit status (128 + N for signal N),
    or 1 with the one-line error when the lock is held."""
    children: list[subprocess.Popen[bytes]] = []
    terminated: list[int] = []

    def forward(signum: int, frame: FrameType | None) -> None:
        """Ctrl-C reaches the whole process group, the command included: it ends on its own
        (SIGINT is not sent twice). A SIGTERM sent to this wrapper alone is passed on."""
        if signum == signal.SIGTERM:
            terminated.append(signum)
            for child in children:
                child.send_signal(signum)

    # Handlers, not SIG_IGN, which the command would inherit: exec resets handlers.
    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with hold(path, command) as fd:
            if terminated:  # before the command started
                return 128 + signal.SIGTERM
            children.append(subprocess.Popen(command, pass_fds=(fd,)))
            code = children[0].wait()
    except Locked as locked:
        log(f"ERROR: {locked}")
        return 1
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 128 - code if code < 0 else code


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) < 3 or argv[1] != "--":
        print("usage: python -m fairseq_mgcm.recipe.run_lock LOCK_FILE -- command ...",
              file=sys.stderr)
        return 2
    return run_locked(argv[0], argv[2:])


if __name__ == "__main__":
    sys.exit(main())
