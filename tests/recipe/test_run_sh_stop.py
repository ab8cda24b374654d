"""scripts/run.sh stopped while it trains, and started twice on one run folder: SIGTERM ends
the training and what it started (no orphan), nothing is marked trained, and a second recipe
on the same folder is refused naming the first one's training, before it writes anything.

fairseq-train (``python -m fairseq_mgcm.cli train``) is a stand-in, through a ``python`` first on
PATH that runs every other command with the real one (it records its pid and a child's, then
waits), so the test takes seconds; the prepared data is three small files, as much as stage 3
reads before it trains. The supervisor and the lock have their unit tests (test_supervise.py,
test_run_lock.py); this is their wiring in run.sh, run once. No test depends on timing: it
waits for files and exits, with a bound on a hang only."""
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HANG_S = 300  # a bound on a hang, not a timing assumption

FAKE_TRAIN = """#!/bin/sh
sleep 1000 & echo $! > "$MGCM_TEST_OUT/grandchild"
echo $$ > "$MGCM_TEST_OUT/train"
wait
"""
# run.sh's fairseq-train is `python -m fairseq_mgcm.cli train ...`
FAKE_PYTHON = f"""#!/bin/sh
[ "$1 $2 $3" != "-m fairseq_mgcm.cli train" ] || exec "$(dirname "$0")/fake-train"
exec "{sys.executable}" "$@"
"""


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_sigterm_leaves_no_training_behind_and_a_second_writer_is_refused(tmp_path):
    bin_dir, exp = tmp_path / "bin", tmp_path / "exp"
    bin_dir.mkdir()
    for name, text in (("fake-train", FAKE_TRAIN), ("python", FAKE_PYTHON)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    (exp / "data").mkdir(parents=True)
    for name in ("config.yaml", "train.tsv", "dev.tsv"):
        (exp / "data" / name).write_text(f"{name}\n")
    env = dict(os.environ, OMP_NUM_THREADS="1", MGCM_VENV=sys.prefix, MGCM_TEST_OUT=str(tmp_path),
               MGCM_RECIPE_FLAGS_CHECKED="1",  # as --jobs runs: no fairseq parse before stage 0
               PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
               PATH=os.pathsep.join([str(bin_dir), str(Path(sys.executable).parent),
                                     os.environ["PATH"]]))
    env.pop("MGCM_RECIPE_SUPERVISED", None)
    command = ["bash", "scripts/run.sh", "--recipe", "configs/recipes/demo.sh", "--exp-dir",
               str(exp), "--stage", "3", "--stop-stage", "3"]
    first = subprocess.Popen(command, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + HANG_S
        files = [tmp_path / "train", tmp_path / "grandchild"]
        while not all(f.is_file() and f.read_text().strip() for f in files):
            assert first.poll() is None, first.stderr.read()[-3000:]
            assert time.monotonic() < deadline
            time.sleep(0.1)
        pids = [int(f.read_text()) for f in files]

        second = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                                timeout=HANG_S)
        assert second.returncode == 1, second.stderr[-3000:]
        # the training's output (the lock's error included) goes through console_filter: stdout
        assert (f"ERROR: {exp}/mgcm is being written by another training: host "
                f"{socket.gethostname()}, pid ") in second.stdout
        assert "(python -m fairseq_mgcm.recipe.peak_memory" in second.stdout
        assert all(alive(pid) for pid in pids)  # the first training goes on, alone
        assert not (exp / "mgcm" / "train_peak.json").exists()  # the second wrote nothing

        first.send_signal(signal.SIGTERM)
        _, err = first.communicate(timeout=HANG_S)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 128 + signal.SIGTERM, err[-3000:]
    assert not any(alive(pid) for pid in pids), err[-3000:]
    assert not (exp / "mgcm" / ".train.done").exists()
    assert (exp / "mgcm" / ".train.lock").read_text() == ""  # released, not stale
