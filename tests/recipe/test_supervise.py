"""The recipe's supervisor (fairseq_mgcm/recipe/supervise.py): SIGTERM or SIGINT to it ends the
recipe and everything the recipe started, children's children included, and what a recipe
leaves running when it ends is ended too. Real processes; each test waits for files or exits,
with a bound on a hang only. run.sh itself under a signal: tests/recipe/test_run_sh.py."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fairseq_mgcm.recipe.supervise import ENV

ROOT = Path(__file__).resolve().parents[2]
HANG_S = 120  # a bound on a hang, not a timing assumption

# A stand-in recipe: a step (sh) running a long child and a grandchild, each pid recorded.
RECIPE = ('sh -c \'sleep 1000 & echo $! > "$1/grandchild"; echo $$ > "$1/step"; wait\' x "$1"; '
          'echo "$' + ENV + '" > "$1/env"')


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_for_pids(tmp_path: Path, process: subprocess.Popen, *names: str) -> list[int]:
    deadline = time.monotonic() + HANG_S
    files = [tmp_path / name for name in names]
    while not all(f.is_file() and f.read_text().strip() for f in files):
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    return [int(f.read_text()) for f in files]


def supervised(tmp_path: Path, script: str, grace_s: float | None = None) -> subprocess.Popen:
    env = dict(os.environ, **({"MGCM_STOP_GRACE_S": str(grace_s)} if grace_s is not None else {}))
    return subprocess.Popen([sys.executable, "-m", "fairseq_mgcm.recipe.supervise",
                             "bash", "-c", script, "recipe", str(tmp_path)], cwd=ROOT,
                            stderr=subprocess.PIPE, text=True, env=env)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
def test_a_stop_ends_the_recipe_and_all_it_started(tmp_path, signum):
    # A non-interactive shell's background job ignores SIGINT: on Ctrl-C the grandchild lives
    # on until the grace period's SIGKILL (2 s here instead of 30).
    supervisor = supervised(tmp_path, RECIPE, grace_s=2)
    pids = wait_for_pids(tmp_path, supervisor, "step", "grandchild")
    assert all(alive(pid) for pid in pids)
    supervisor.send_signal(signum)
    _, err = supervisor.communicate(timeout=HANG_S)
    assert supervisor.returncode == 128 + signum
    assert f"stopped by {signum.name}: ending the recipe's processes" in err
    assert not any(alive(pid) for pid in pids), err
    assert not (tmp_path / "env").exists()  # the recipe did not go on after its step


def test_processes_a_recipe_leaves_running_are_ended(tmp_path):
    script = 'sleep 1000 & echo $! > "$1/left"; echo "$' + ENV + '" > "$1/env"'
    supervisor = supervised(tmp_path, script)
    _, err = supervisor.communicate(timeout=HANG_S)
    assert supervisor.returncode == 0
    left = int((tmp_path / "left").read_text())
    assert f"ending 1 process(es) the recipe left running (pids {left})" in err
    assert not alive(left)
    assert (tmp_path / "env").read_text() == "1\n"  # run.sh does not supervise itself twice


def test_the_recipes_exit_status_is_kept(tmp_path):
    supervisor = supervised(tmp_path, "exit 3")
    _, err = supervisor.communicate(timeout=HANG_S)
    assert supervisor.returncode == 3 and err == ""
