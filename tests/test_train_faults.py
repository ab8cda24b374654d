"""Fault injection for training: kill fairseq-train (MGCM, conflict telemetry) with SIGKILL,
SIGTERM or SIGINT after a checkpoint was saved, re-run the same command, and compare with an
uninterrupted run of the same number of updates.

After the re-run (fairseq resumes from ``checkpoint_last.pt``):

* every checkpoint holds the same model parameters, optimizer state, scheduler state, data
  iterator position and validation loss as the uninterrupted run's file of the same name,
  compared with ``torch.equal``: resume is exact, not merely close. fairseq re-seeds torch at
  every update (``seed + num_updates``), restores the epoch iterator's position, Adam's moments
  and the learning-rate schedule, and MGCM draws no random numbers; on one CPU thread the same
  arithmetic then runs in the same order.
* the save directory holds the same files as the uninterrupted run's: no ``.tmp`` file left;
* the conflict telemetry file is byte-identical to the uninterrupted run's, every line whole
  JSON (the re-run drops the lines of the updates it redoes);
* nothing written before the fault is lost: every file is still there, and the checkpoints up to
  the resume point and the telemetry lines up to it are byte-for-byte unchanged.

The kill points are random (a seeded draw of the update, ``MGCM_FAULT_SEED`` to draw others);
the run holds still there until the signal arrives, so no kill depends on the machine's speed.
Two more tests kill the process inside a checkpoint write, where a random kill on
this tiny model rarely lands: in ``torch.save`` of ``checkpoint_1_8.pt.tmp`` and in the copy of
that checkpoint onto ``checkpoint_last.pt`` (which used to truncate ``checkpoint_last.pt``; see
``fairseq_mgcm/checkpoints/atomic_copies.py``).
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from tests.test_train_conflict_cli import ROOT, _argv

MAX_UPDATE = 12
SAVE_EVERY = 4  # --save-interval-updates; an epoch of the tiny corpus is 9 updates, so the
# checkpoints are at 4, 8, 9 (end of epoch 1, checkpoint1.pt) and 12, each also copied onto
# checkpoint_last.pt and (when validation improved) checkpoint_best.pt. The telemetry interval
# (3) does not divide 4, so windows are cut at checkpoints as well as at interval ends.
SIGNALS = [signal.SIGKILL, signal.SIGTERM, signal.SIGINT]
TIMEOUT = 300
_rng = random.Random(os.environ.get("MGCM_FAULT_SEED", "0"))
# signal: the update after which the run is stopped. The run pauses there (``_PAUSE_AT``) and
# the signal is sent only then, so a loaded machine cannot let the run finish first.
KILL_POINTS = {
    sig: update
    for sig, update in zip(SIGNALS, _rng.sample(range(SAVE_EVERY + 1, MAX_UPDATE - 1), 3))
}
# fairseq-train, holding still in the update after ``AT`` updates: it writes READY and sleeps
# until a signal ends it (a pause at a known point, not a race against a timer).
# SIGINT as a terminal's Ctrl-C delivers it: a suite started in the background of a
# non-interactive shell (`script &`) inherits SIGINT ignored, and Python then never raises
# KeyboardInterrupt (two such loaded runs slept on; the stack dump showed the run still paused).
_PAUSE_AT = """
import faulthandler, signal, sys, time
from fairseq_mgcm.fast_start import defer_unused_imports
defer_unused_imports()  # before fairseq loads, as in python -m fairseq_mgcm.cli
signal.signal(signal.SIGINT, signal.default_int_handler)
faulthandler.register(signal.SIGUSR1, all_threads=True)  # the stacks, if it ever hangs
AT, READY = int(sys.argv.pop(1)), sys.argv.pop(1)
from fairseq import trainer
real_step = trainer.Trainer.train_step

def train_step(self, samples, raise_oom=False):
    if self.get_num_updates() == AT:
        open(READY, "w").close()
        while True:
            time.sleep(1)
    return real_step(self, samples, raise_oom)

trainer.Trainer.train_step = train_step
from fairseq_mgcm.cli import main
sys.exit(main(["train", *sys.argv[1:]]))
"""


def _command(data: Path, save_dir: Path) -> list[str]:
    extra = ["--cpu", "--max-update", str(MAX_UPDATE), "--save-interval-updates",
             str(SAVE_EVERY), "--log-interval", "1"]
    return [sys.executable, "-m", "fairseq_mgcm.cli", "train", *_argv(data, save_dir, 100, extra)]


def _env() -> dict[str, str]:
    return dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1",
                PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")


def _run(command: list[str]) -> str:
    done = subprocess.run(command, cwd=ROOT, env=_env(), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=TIMEOUT)
    assert done.returncode == 0, done.stdout[-3000:]
    return done.stdout


def _load(path: Path) -> dict:
    from fairseq_mgcm.checkpoints.safe_globals import install_fairseq_safe_globals

    install_fairseq_safe_globals()

    return torch.load(path, map_location="cpu", weights_only=True)


def _assert_equal(a, b, where: str) -> None:
    """Exact equality of nested dicts/lists of tensors and plain values."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and sorted(a, key=str) == sorted(b, key=str), where
        for key in a:
            _assert_equal(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_equal(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def _assert_same_state(path: Path, reference: Path) -> None:
    """Everything training depends on; not the wall-clock meters (extra_state['metrics'],
    'previous_training_time') that differ between any two runs, nor the list of earlier runs."""
    state, ref = _load(path), _load(reference)
    _assert_equal(state["model"], ref["model"], f"{path.name} model")
    _assert_equal(state["last_optimizer_state"], ref["last_optimizer_state"],
                  f"{path.name} optimizer")
    # A resumed run appends an entry to optimizer_history (one per run); its last is the state.
    # Not the scheduler's "best" validation loss: fairseq saves the end-of-epoch checkpoint
    # before lr_step(epoch, val_loss) records it, so a run resumed from that checkpoint has
    # best=None until its next epoch ends. Only plateau schedulers read it; the project's
    # inverse_sqrt does not (the learning rate itself is in the optimizer state above).
    history, ref_history = (dict(h["optimizer_history"][-1]) for h in (state, ref))
    for h in (history, ref_history):
        h["lr_scheduler_state"] = {k: v for k, v in h["lr_scheduler_state"].items()
                                   if k != "best"}
    _assert_equal(history, ref_history, f"{path.name} optimizer_history[-1]")
    for key in ("train_iterator", "val_loss", "best"):
        _assert_equal(state["extra_state"].get(key), ref["extra_state"].get(key),
                      f"{path.name} extra_state[{key!r}]")


def _updates(path: Path) -> int:
    return int(_load(path)["optimizer_history"][-1]["num_updates"])


@pytest.fixture(scope="module")
def uninterrupted(prepared_tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    save_dir = tmp_path_factory.mktemp("uninterrupted") / "ck"
    _run(_command(prepared_tiny, save_dir))
    assert _updates(save_dir / "checkpoint_last.pt") == MAX_UPDATE
    return save_dir


def _kill_during(command: list[str], update: int, ready: Path, sig: int) -> str:
    """Start ``command`` paused after ``update`` updates (``_PAUSE_AT``); once it holds there,
    send ``sig``. Returns the log; fails if the process did not die of the signal."""
    paused = [sys.executable, "-c", _PAUSE_AT, str(update), str(ready), *command[4:]]
    process = subprocess.Popen(paused, cwd=ROOT, env=_env(), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(process.stdout or []), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + TIMEOUT
        while not ready.exists():
            assert process.poll() is None, "".join(lines)[-3000:]
            assert time.monotonic() < deadline, "".join(lines)[-3000:]
            time.sleep(0.1)
        process.send_signal(sig)
        try:
            process.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGUSR1)  # print every thread's stack, then fail
            time.sleep(5)
            process.kill()
            reader.join(TIMEOUT)
            pytest.fail(f"still running {TIMEOUT} s after {signal.Signals(sig).name}:\n"
                        + "".join(lines)[-6000:])
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    reader.join(TIMEOUT)
    log = "".join(lines)
    # Python dies of an uncaught KeyboardInterrupt by SIGINT itself: -sig for all three.
    assert process.returncode == -sig, (
        f"exit {process.returncode}: the run did not die of {signal.Signals(sig).name}\n"
        f"{log[-3000:]}")
    return log


def _snapshot(save_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in save_dir.iterdir()}


def _resume_and_compare(command: list[str], save_dir: Path, reference: Path) -> int:
    """Re-run ``command`` after a fault, compare with ``reference``; returns the resume point."""
    killed = _snapshot(save_dir)
    resumed = _updates(save_dir / "checkpoint_last.pt")
    assert resumed >= SAVE_EVERY  # the kill came after a checkpoint

    log = _run(command)  # the same command: fairseq resumes from checkpoint_last.pt
    assert re.search(rf"Loaded checkpoint \S+checkpoint_last\.pt \(epoch \d+ @ {resumed} updates",
                     log), log[-3000:]

    # No temp file (fairseq's <name>.tmp, the telemetry rewrite's .<name>.*.tmp) is left, and
    # every file of the uninterrupted run is there with the same state.
    assert sorted(p.name for p in save_dir.iterdir()) == sorted(
        p.name for p in reference.iterdir())
    for path in sorted(reference.glob("*.pt")):
        _assert_same_state(save_dir / path.name, path)

    telemetry = (save_dir / "conflict.jsonl").read_bytes()
    assert telemetry == (reference / "conflict.jsonl").read_bytes()
    from fairseq_mgcm.conflict.telemetry import read_windows

    windows = list(read_windows(save_dir / "conflict.jsonl"))  # every line whole JSON
    assert telemetry.endswith(b"\n") and windows[-1].last_step == MAX_UPDATE - 1

    # Nothing written before the fault was lost: every file is still there; the checkpoints
    # up to the resume point (not checkpoint_last/_best, which move on) and the telemetry
    # lines of the updates before it are unchanged.
    for name, data in killed.items():
        if name.endswith(".tmp"):
            continue
        assert (save_dir / name).exists(), name
        numbered = re.fullmatch(r"checkpoint(\d+|_\d+_\d+)\.pt", name)
        if numbered and _updates(save_dir / name) <= resumed:
            assert (save_dir / name).read_bytes() == data, name
    kept = [line for line in killed["conflict.jsonl"].splitlines(keepends=True)
            if line.endswith(b"\n") and json.loads(line)["last_step"] < resumed]
    assert kept and telemetry.startswith(b"".join(kept))
    return resumed


@pytest.mark.slow
@pytest.mark.parametrize("sig", SIGNALS, ids=[s.name for s in SIGNALS])
def test_killed_training_resumes_to_the_same_state(sig, prepared_tiny, uninterrupted, tmp_path):
    update = KILL_POINTS[sig]  # after the first checkpoint, before the last update
    save_dir = tmp_path / "ck"
    command = _command(prepared_tiny, save_dir)
    _kill_during(command, update, tmp_path / "paused", sig)
    resumed = _resume_and_compare(command, save_dir, uninterrupted)
    print(f"{sig.name} after update {update}; resumed from update {resumed}")


# Kill the process from inside a checkpoint write, half-way through the file: in torch.save of
# the temp file fairseq renames into place, and in the copy of the saved checkpoint onto
# checkpoint_last.pt. The rest is fairseq-train as on the command line.
_DIE_IN_WRITE = """
import os, shutil, signal, sys, torch
WHERE = sys.argv.pop(1)

def half_then_die(data, handle):
    handle.write(data[: len(data) // 2])
    handle.flush()
    os.kill(os.getpid(), signal.SIGKILL)

if WHERE == "torch.save":
    real_save = torch.save
    def save(obj, f, *args, **kwargs):
        if getattr(f, "name", "").endswith("checkpoint_1_8.pt.tmp"):
            import io
            buffer = io.BytesIO()
            real_save(obj, buffer, *args, **kwargs)
            half_then_die(buffer.getvalue(), f)
        return real_save(obj, f, *args, **kwargs)
    torch.save = save
else:
    real_copy = shutil.copyfile
    def copyfile(src, dst, *args, **kwargs):
        if src.endswith("checkpoint_1_8.pt") and "checkpoint_last" in os.path.basename(dst):
            with open(src, "rb") as source, open(dst, "wb") as target:
                half_then_die(source.read(), target)
        return real_copy(src, dst, *args, **kwargs)
    shutil.copyfile = copyfile

from fairseq_mgcm.cli import main
sys.exit(main(["train", *sys.argv[1:]]))
"""


@pytest.mark.slow
@pytest.mark.parametrize("where", ["torch.save", "copy-to-last"])
def test_killed_inside_a_checkpoint_write_resumes_to_the_same_state(where, prepared_tiny,
                                                                     uninterrupted, tmp_path):
    save_dir = tmp_path / "ck"
    command = _command(prepared_tiny, save_dir)
    dying = [sys.executable, "-c", _DIE_IN_WRITE, where, *command[4:]]
    done = subprocess.run(dying, cwd=ROOT, env=_env(), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=TIMEOUT)
    assert done.returncode == -signal.SIGKILL, done.stdout[-3000:]
    assert _resume_and_compare(command, save_dir, uninterrupted) == SAVE_EVERY


def test_resume_drops_a_torn_telemetry_line(tmp_path) -> None:
    """A crash in the middle of a telemetry write (a full disk, a power cut; SIGKILL does not
    split one ``write``) leaves a last line without its newline; the resumed run drops it with
    the windows it redoes instead of failing on it, and every line is whole JSON again."""
    from fairseq_mgcm.conflict import ConflictStats, ModuleConflict
    from fairseq_mgcm.conflict.telemetry import TelemetryWriter, read_windows

    stats = ConflictStats("mgcm", "st", (
        ModuleConflict("enc.0.attn", "attention", ("st", "ctc"), -0.5, True),))
    path = tmp_path / "conflict.jsonl"
    first = TelemetryWriter(path, interval=2)
    for step in range(6):
        first.add(stats, step)
    first.close()
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) - 20])  # the window of updates 4-5, torn
    resumed = TelemetryWriter(path, interval=2)  # resumes from a checkpoint at update 4
    for step in range(4, 6):
        resumed.add(stats, step)
    resumed.close()
    assert path.read_bytes() == whole
    assert [(w.first_step, w.last_step) for w in read_windows(path)] == [(0, 1), (2, 3), (4, 5)]
