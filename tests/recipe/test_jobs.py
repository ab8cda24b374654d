"""The --jobs scheduler (fairseq_mgcm/recipe/jobs.py) on stand-in runs: order, slots, the
table after the next start, a failure stopping new starts, and no orphans when it is killed.
No test depends on timing: each waits for events (files, exits), never for a duration."""
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from fairseq_mgcm.recipe.jobs import Job, schedule

ROOT = Path(__file__).resolve().parents[2]


def job(tmp_path: Path, name: str, code: int = 0) -> Job:
    """A run that prints its name and exits with ``code``."""
    command = [sys.executable, "-c", f"print('run {name}'); raise SystemExit({code})"]
    return Job(name, command, tmp_path / "logs" / f"{name}.log", dict(os.environ))


def test_runs_go_in_order_and_the_table_comes_after_the_next_start(tmp_path, capsys):
    jobs = [job(tmp_path, name) for name in ("a", "b", "c", "d")]
    seen: list[set[str]] = []
    ok = schedule(jobs, 2, lambda: seen.append({p.stem for p in (tmp_path / "logs").iterdir()}))
    assert ok
    assert seen[0] == {"a", "b", "c"}  # one finished: the next started before the table
    assert len(seen) == 4 and seen[-1] == {"a", "b", "c", "d"}
    err = capsys.readouterr().err
    starts = [line.split(" start ")[1].split(" ")[0] for line in err.splitlines()
              if " start " in line]
    assert starts == ["a", "b", "c", "d"]
    for name in "abcd":
        assert (tmp_path / "logs" / f"{name}.log").read_text() == f"run {name}\n"
        assert f"finished {name}" in err


def test_a_failed_run_is_named_with_its_log_and_no_new_run_starts(tmp_path, capsys):
    jobs = [job(tmp_path, "a", 3), job(tmp_path, "b", 4), job(tmp_path, "c")]
    reports: list[int] = []
    assert not schedule(jobs, 2, lambda: reports.append(1))
    err = capsys.readouterr().err
    assert f"ERROR: a failed (exit 3): see {tmp_path}/logs/a.log" in err
    assert f"ERROR: b failed (exit 4): see {tmp_path}/logs/b.log" in err
    assert "start c" not in err and not (tmp_path / "logs" / "c.log").exists()
    assert reports == []  # nothing finished, so no table


def test_one_slot_stops_at_the_first_failure(tmp_path):
    assert not schedule([job(tmp_path, "a", 1), job(tmp_path, "b")], 1, lambda: None)
    assert not (tmp_path / "logs" / "b.log").exists()


SCHEDULER = textwrap.dedent("""
    import os, sys
    from pathlib import Path
    from fairseq_mgcm.recipe.jobs import Job, schedule
    out = Path(sys.argv[1])
    # each run: a shell that starts a grandchild, records both pids, and waits
    shell = 'sleep 1000 & echo $! > {d}/$0.grand; echo $$ > {d}/$0.pid; wait'
    jobs = [Job(n, ["sh", "-c", shell.format(d=out), n], out / f"{n}.log", dict(os.environ))
            for n in ("a", "b", "c")]
    schedule(jobs, 2, lambda: None)
""")


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
def test_sigterm_ends_every_run_and_what_it_started(tmp_path, signum):
    """SIGTERM (kill) or SIGINT (Ctrl-C): every run's group, its children's children too."""
    scheduler = subprocess.Popen([sys.executable, "-c", SCHEDULER, str(tmp_path)], cwd=ROOT,
                                 stderr=subprocess.PIPE, text=True)
    files = [tmp_path / f"{n}.{kind}" for n in ("a", "b") for kind in ("pid", "grand")]
    deadline = time.monotonic() + 120  # a bound on a hang, not a timing assumption
    while not all(f.is_file() and f.read_text().strip() for f in files):
        assert scheduler.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    pids = [int(f.read_text()) for f in files]
    assert all(_alive(pid) for pid in pids)
    scheduler.send_signal(signum)
    _, err = scheduler.communicate(timeout=120)
    assert scheduler.returncode != 0
    assert "stopped: ending 2 run(s)" in err, err
    assert not any(_alive(pid) for pid in pids), err
    assert not (tmp_path / "c.log").exists()


def test_a_stop_that_lands_while_a_run_starts_still_ends_that_run(tmp_path, monkeypatch, capsys):
    """The signal arrives inside Popen, after the run's process started (what a busy machine
    did in the test above, now and then): the run is still recorded and ended, not orphaned."""
    from fairseq_mgcm.recipe import jobs

    started: list[subprocess.Popen] = []

    def start_then_signal(command, env, **kwargs):
        process = real_start(command, env, **kwargs)
        started.append(process)
        os.kill(os.getpid(), signal.SIGTERM)  # handled at the next bytecode, still in here
        return process

    real_start = jobs._start
    monkeypatch.setattr(jobs, "_start", start_then_signal)
    run = Job("a", [sys.executable, "-c", "import time; time.sleep(1000)"], tmp_path / "a.log",
              dict(os.environ))
    try:
        with pytest.raises(jobs.Stopped):
            schedule([run], 1, lambda: None)
        assert started and started[0].returncode is not None  # ended and reaped
        assert "stopped: ending 1 run(s)" in capsys.readouterr().err
    finally:
        for process in started:
            if process.poll() is None:
                process.kill()
