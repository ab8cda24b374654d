"""The run-folder lock (fairseq_mgcm/recipe/run_lock.py): one writer at a time, the owner named
to a second one, a stale lock taken over with a log line, and the lock held by the command
itself while it lives. Real processes; no test depends on timing: each waits for a file or an
exit, with a bound on a hang only."""
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fairseq_mgcm.recipe import run_lock
from fairseq_mgcm.recipe.run_lock import Locked, Owner, hold

ROOT = Path(__file__).resolve().parents[2]
HANG_S = 120  # a bound on a hang, not a timing assumption


def _dead_pid() -> int:
    """A pid that no process has now (a child that was started and reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _record(lock: Path, host: str, pid: int) -> None:
    lock.write_text(json.dumps({"host": host, "pid": pid, "command": "fairseq-train old",
                                "since": "2026-01-02 03:04:05 UTC", "start_ticks": None}) + "\n")


def test_a_second_writer_is_refused_naming_the_owner(tmp_path):
    lock = tmp_path / "run" / ".train.lock"
    with hold(lock, ["fairseq-train", "data", "--save-dir", "x"]):
        owner = Owner.read(os.open(lock, os.O_RDONLY))
        assert owner is not None and owner.pid == os.getpid()
        assert owner.host == socket.gethostname() and owner.command.startswith("fairseq-train")
        with pytest.raises(Locked) as refused, hold(lock, ["second"]):
            pass
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith(f"{lock.parent} is being written by another training: host "
                              f"{socket.gethostname()}, pid {os.getpid()}, since ")
    assert "(fairseq-train data --save-dir x)" in message and f"lock file {lock}" in message
    assert lock.read_text() == ""  # a clean release leaves nothing that looks stale


def test_a_stale_lock_is_taken_over_with_a_log_line(tmp_path, capsys):
    """The owner died without releasing (SIGKILL, a machine that went down): flock is free,
    the record still names it."""
    lock = tmp_path / ".train.lock"
    _record(lock, "deadhost", 4242)
    with hold(lock, ["mine"]):
        assert json.loads(lock.read_text())["pid"] == os.getpid()
    err = capsys.readouterr().err
    assert (f"taking over the stale lock {lock} of host deadhost, pid 4242, since "
            "2026-01-02 03:04:05 UTC (fairseq-train old): it is gone") in err


def test_without_flock_the_record_decides(tmp_path, monkeypatch, capsys):
    """On a file system without flock: a live owner on this host (here: this process) or any
    owner on another host keeps the lock; an owner on this host whose pid is gone does not."""
    monkeypatch.setattr(run_lock, "_flock", lambda fd: None)
    lock = tmp_path / ".train.lock"
    _record(lock, socket.gethostname(), os.getpid())
    with pytest.raises(Locked, match=f"pid {os.getpid()}"), hold(lock, ["x"]):
        pass
    _record(lock, "otherhost", _dead_pid())
    with pytest.raises(Locked, match="host otherhost"), hold(lock, ["x"]):
        pass
    dead = _dead_pid()
    _record(lock, socket.gethostname(), dead)
    with hold(lock, ["x"]):
        pass
    assert f"pid {dead}, since" in capsys.readouterr().err


def _run_lock(lock: Path, *command: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "fairseq_mgcm.recipe.run_lock", str(lock),
                             "--", *command], cwd=ROOT, stderr=subprocess.PIPE, text=True)


def _wait_for(path: Path, process: subprocess.Popen) -> int:
    deadline = time.monotonic() + HANG_S
    while not (path.is_file() and path.read_text().strip()):
        assert process.poll() is None and time.monotonic() < deadline, process.stderr.read()
        time.sleep(0.05)
    return int(path.read_text())


def test_the_command_holds_the_lock_even_when_the_wrapper_is_killed(tmp_path):
    """SIGKILL of the wrapper alone leaves the training running: it still holds the lock (the
    descriptor is inherited), so no second writer starts beside it; once it is gone the lock is
    stale and taken over."""
    lock, pid_file = tmp_path / ".train.lock", tmp_path / "pid"
    training = f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); " \
               "time.sleep(1000)"
    first = _run_lock(lock, sys.executable, "-c", training)
    trainer = _wait_for(pid_file, first)
    try:
        first.kill()
        first.wait(timeout=HANG_S)
        second = _run_lock(lock, sys.executable, "-c", "print('trained')")
        _, err = second.communicate(timeout=HANG_S)
        assert second.returncode == 1
        assert "ERROR:" in err and f"pid {first.pid}, since" in err and len(err.splitlines()) == 1
    finally:
        os.kill(trainer, signal.SIGKILL)
    deadline = time.monotonic() + HANG_S
    while Path(f"/proc/{trainer}").exists() and "Z" not in _state(trainer):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    third = subprocess.run([sys.executable, "-m", "fairseq_mgcm.recipe.run_lock", str(lock), "--",
                            sys.executable, "-c", "raise SystemExit(7)"], cwd=ROOT,
                           capture_output=True, text=True, timeout=HANG_S)
    assert third.returncode == 7  # the command's status
    assert f"taking over the stale lock {lock} of host {socket.gethostname()}, pid " \
           f"{first.pid}" in third.stderr
    assert lock.read_text() == ""


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"


def test_sigterm_to_the_wrapper_reaches_the_command(tmp_path):
    lock, pid_file = tmp_path / ".train.lock", tmp_path / "pid"
    training = f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); " \
               "time.sleep(1000)"
    wrapper = _run_lock(lock, sys.executable, "-c", training)
    trainer = _wait_for(pid_file, wrapper)
    wrapper.send_signal(signal.SIGTERM)
    wrapper.communicate(timeout=HANG_S)
    assert wrapper.returncode == 128 + signal.SIGTERM
    assert _state(trainer) == "Z" or not Path(f"/proc/{trainer}").exists()
    assert lock.read_text() == ""
