"""``--jobs N``: the recipe's runs side by side on CPU.

On 2 cores two one-thread trainings do about 1.5x the updates of one two-thread training (the
tiny model leaves a second thread idle much of the time; docs/recipe.md), so with ``--jobs N``
run.sh hands its runs (a method at a seed: stages 3-6) to this scheduler, which first runs the
stages they share (0-2: corpus, data, ASR pre-training) once. Each run is run.sh
again for that run alone, on nproc/N threads, its output in ``$exp_dir/logs/<id>.log``, in
the recipe's order. When one finishes the next starts first, and only then is the table
(stage 7, slow with the significance tests) rewritten, so the cores never wait on it. A run
that fails is named with its log and no new run starts; those running finish, and the
scheduler exits 1 (every stage resumes on a re-run). SIGTERM or SIGINT ends every run (each
in its own process group, with whatever it started) before the scheduler exits.

Usage (run.sh ``exec``s it, so killing run.sh reaches this process)::

    python -m fairseq_mgcm.recipe.jobs RUN.SH-ARGS...
"""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from fairseq_mgcm.recipe.configure import FLAGS_CHECKED, RUN_SH
from fairseq_mgcm.recipe.matrix import run_matrix

__all__ = ["Job", "Stopped", "cores", "main", "schedule"]


def log(message: str) -> None:
    """One line on stderr in run.sh's log format."""
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} (jobs.py) {message}", file=sys.stderr,
          flush=True)


def cores() -> int:
    """The cores this process may use. Not ``nproc``, which honours OMP_NUM_THREADS: a caller's
    OMP_NUM_THREADS=1 must not make two side-by-side runs look like too many."""
    return len(os.sched_getaffinity(0))


@dataclass(frozen=True)
class Job:
    """One run to start: its name, command, log file and environment."""

    id: str
    command: list[str]
    log: Path
    env: dict[str, str]


class Stopped(Exception):
    """The scheduler got SIGTERM or SIGINT."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class _StopSignals:
    """The SIGTERM/SIGINT handler: raises :class:`Stopped`, except while a run is being started
    (``starting()``), when it holds the signal and raises on the way out. A signal that landed
    inside ``subprocess.Popen`` would otherwise leave a run that had already started (and
    perhaps started others) unrecorded, so it would outlive the scheduler."""

    def __init__(self) -> None:
        self._starting = False
        self._held: int | None = None

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if self._starting:
            self._held = signum
            return
        raise Stopped(signum)

    @contextlib.contextmanager
    def starting(self) -> Iterator[None]:
        self._starting = True
        try:
            yield
        finally:
            self._starting = False
        if self._held is not None:
            signum, self._held = self._held, None
            raise Stopped(signum)


_stop = _StopSignals()


def _start(command: list[str], env: dict[str, str], **kwargs: Any) -> subprocess.Popen[bytes]:
    """``command`` in its own process group (the run and everything it starts), recorded by
    the caller before a stop signal is let through."""
    return subprocess.Popen(command, env=env, start_new_session=True, **kwargs)


def _end_all(running: Mapping[int, tuple[Job | None, subprocess.Popen[bytes]]]) -> None:
    """SIGTERM every run's process group (the run and all it started), then reap them."""
    for _, process in running.values():
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    for _, process in running.values():
        process.wait()


def _run_group(command: list[str], env: dict[str, str]) -> int:
    """Run ``command`` to its end in its own process group; if the scheduler is stopped
    meanwhile, end the whole group before passing the stop on."""
    process = None
    try:
        with _stop.starting():
            process = _start(command, env)
        return process.wait()
    except BaseException:
        if process is not None:
            _end_all({process.pid: (None, process)})
        raise


def schedule(jobs: Sequence[Job], slots: int, report: Callable[[], None]) -> bool:
    """Run ``jobs`` in order, ``slots`` at a time; after a run finishes (and the next started)
    call ``report``. Returns False when a run failed (no new run starts after it). SIGTERM or
    SIGINT ends every run, then raises :class:`Stopped`."""
    running: dict[int, tuple[Job, subprocess.Popen[bytes]]] = {}
    pending, failed, finished = list(jobs), False, False
    handlers = {s: signal.signal(s, _stop) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        while pending or running:
            while pending and len(running) < slots and not failed:
                job = pending.pop(0)
                job.log.parent.mkdir(parents=True, exist_ok=True)
                log(f"start {job.id} ({job.env.get('OMP_NUM_THREADS')} thread(s)): {job.log}")
                with _stop.starting(), open(job.log, "wb") as out:
                    process = _start(job.command, job.env, stdout=out,
                                     stderr=subprocess.STDOUT)
                    running[process.pid] = (job, process)
            if finished:  # the table after the next run has started
                finished = False
                report()
            if not running:
                break
            pid, status = os.waitpid(-1, 0)
            if pid not in running:
                continue
            job, process = running.pop(pid)
            process.returncode = code = os.waitstatus_to_exitcode(status)
            if code == 0:
                log(f"finished {job.id}")
                finished = True
            else:
                log(f"ERROR: {job.id} failed (exit {code}): see {job.log}")
                failed = True
        if finished:
            report()
    except Stopped:
        log(f"stopped: ending {len(running)} run(s)")
        _end_all(running)
        raise
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
    return not failed


def main(argv: list[str] | None = None) -> int:
    from fairseq_mgcm.recipe.checks import check
    from fairseq_mgcm.recipe.options import parse

    args = sys.argv[1:] if argv is None else argv
    values = parse(args)
    assert values is not None  # run.sh handled --help before
    settings = check(values)
    stage, stop = settings.int("stage"), settings.int("stop_stage")
    exp_dir, seeded = Path(settings.values["exp_dir"]), bool(settings.values["seeds"])
    threads = max(1, cores() // settings.int("jobs"))
    env = dict(os.environ, **{FLAGS_CHECKED: "1"})
    env.setdefault("OMP_NUM_THREADS", str(threads))
    run_sh = ["bash", str(RUN_SH), *args, "--jobs", "1"]
    runs = run_matrix(exp_dir, settings.methods, settings.seeds if seeded else None,
                      settings.values["seed"])
    jobs = [Job(run.id, [*run_sh, "--methods", run.method,
                         *(["--seeds", run.seed] if seeded else []),
                         "--stage", str(max(stage, 3)), "--stop-stage", str(min(stop, 6))],
                exp_dir / "logs" / f"{run.id}.log", env) for run in runs]

    report_failures: list[int] = []
    for signum in (signal.SIGTERM, signal.SIGINT):  # a stop during the last table, too
        signal.signal(signum, _stop)

    def report() -> None:
        """Stage 7 over every run so far (run.sh again, in the foreground)."""
        if stage <= 7 <= stop:
            code = _run_group([*run_sh, "--stage", "7", "--stop-stage", "7"], env)
            if code != 0:
                log(f"ERROR: stage 7 failed (exit {code})")
                report_failures.append(code)

    try:
        if stage <= 2:  # the corpus, data and ASR model every run shares: first, on every core
            shared = [*run_sh, "--stage", str(stage), "--stop-stage", str(min(stop, 2))]
            code = _run_group(shared, dict(os.environ, **{FLAGS_CHECKED: "1"}))
            if code != 0:
                log(f"ERROR: stages {stage}..{min(stop, 2)} failed (exit {code})")
                return code
        ok = stage > 6 or stop < 3 or schedule(jobs, settings.int("jobs"), report)
        if not ok:
            log("ERROR: a run failed; the others finished (re-run to resume)")
            return 1
        report()
    except Stopped as stopped:
        return 128 + stopped.signum
    if report_failures:
        return 1
    log(f"done: stages {stage}..{stop} in {exp_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
