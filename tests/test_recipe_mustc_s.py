"""The paper's recipe, configs/recipes/mustc_s.sh (MuST-C layout, the paper-size model), on CPU,
and its 8-GPU overlay as two CPU processes."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from recipe_runs import (
    README_RECIPE,
    ROOT,
    SMALL,
    _env,
    assert_table_equals_recomputed,
    readme_command,
    run_recipe,
)

pytestmark = pytest.mark.slow

# ---------------------------------------------------------------------------------------------
# the paper's recipe (MuST-C layout, the paper-size model), on CPU
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mustc_corpus(tmp_path_factory) -> Path:
    """A small corpus in MuST-C v1.0 layout (en-de/data/<split>/{wav,txt}), made once: 16
    train utterances, 2 dev, 2 test (the untrained paper-size model decodes each test utterance
    to its length limit: seconds each)."""
    out = tmp_path_factory.mktemp("mustc")
    run = subprocess.run([sys.executable, "scripts/make_corpus.py", "--out", str(out),
                          "--n-train", "16", "--n-dev", "2", "--n-test", "2", "--seed", "3"],
                         cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    return out


# Greedy decoding (an untrained beam of 5 runs to the length limit); one epoch of single
# batches (1gpu.args accumulates 8; its 4 loader workers only start up here); no optimizer state
# in the checkpoints (3 x 440 MB per run otherwise).
PAPER_BUDGET = ("--max-epoch 1 --max-tokens 3000 --update-freq 1 --num-workers 0 "
                "--no-save-optimizer-state")


# Of the recipe's four methods, MGCM (the paper's) runs every stage here and discard (only this
# recipe runs it) trains on two processes in the overlay test below; none and PCGrad run end to
# end in tests/test_recipe_comparisons.py. Each paper-size run costs ~45 s of start-up, training
# and decoding.
METHODS = ["mgcm"]


def test_paper_recipe_runs_on_cpu_as_shipped(tmp_path, mustc_corpus):
    exp = tmp_path / "exp"
    command = readme_command(README_RECIPE)
    assert "none mgcm pcgrad discard" in (ROOT / "configs/recipes/mustc_s.sh").read_text()
    run = run_recipe(*command, "--mustc-root", str(mustc_corpus), "--methods", " ".join(METHODS),
                     "--ngpus", "0", "--exp-dir", str(exp), *SMALL, "--beam", "1",
                     "--eval-max-instances", "1",  # the untrained model decodes to its limit
                     "--n-average", "1",  # PAPER_BUDGET is one epoch checkpoint
                     "--extra-train-args", PAPER_BUDGET, timeout=2400)
    assert run.returncode == 0, run.stderr[-4000:]
    assert "dropping --fp16" in run.stderr
    for method in METHODS:
        rows = (exp / method / "simul" / "results.tsv").read_text().splitlines()
        assert [line.split("\t")[:3] for line in rows[1:]] == [
            ["waitk", k, k] for k in ("1", "3", "5", "7", "9", "1000")]  # policy, value, k
        assert_table_equals_recomputed(exp, method, method, "tst-COMMON")
    log = (exp / "mgcm" / "checkpoints" / "train.log").read_text()
    assert "waitk_s2t_transformer_s" in log and "| train | epoch 001 |" in log
    assert re.search(r"\bmt_loss[ =]\d", log) and re.search(r"\basr_loss[ =]\d", log)


def test_eight_gpu_overlay_trains_as_two_cpu_processes(tmp_path, mustc_corpus):
    exp = tmp_path / "exp"
    command = readme_command(README_RECIPE + " --ngpus 8")
    assert "configs/hardware/8gpu.args" in command
    run = run_recipe(*command, "--mustc-root", str(mustc_corpus), "--ngpus", "0", "--nprocs", "2",
                     "--methods", "discard", "--stop-stage", "3", "--exp-dir", str(exp), *SMALL,
                     "--extra-train-args", PAPER_BUDGET + " --max-update 2", timeout=1200)
    assert run.returncode == 0, run.stderr[-4000:]
    log = (exp / "discard" / "checkpoints" / "train.log").read_text()
    assert "'conflict_method': discard" in log
    assert "distributed init (rank 0)" in log and "'ddp_backend': 'legacy_ddp'" in log
    rank1 = (exp / "discard" / "checkpoints" / "train.rank1.log").read_text()
    assert "distributed init (rank 1)" in rank1
    assert (exp / "discard" / "checkpoints" / "checkpoint_last.pt").is_file()
    assert re.findall(r"num_updates[\"': =]+(\d+)", log)[-1] == "2"  # two updates, both ranks
