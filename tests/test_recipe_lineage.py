"""scripts/run.sh redoes exactly the stages downstream of what changed: each input is changed in
turn on one small run (the demo's model on a corpus in MuST-C layout) and the stages that ran
are read off the recipe's log."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from recipe_runs import ROOT, SMALL, _env, read_generate, run_recipe

pytestmark = pytest.mark.slow

# The demo's model, one method; two epochs so that --n-average can change to 2. Stages 0-5: the
# sweep (6) keys each of its runs on the checkpoint's and the data's content itself
# (tests/agents/test_sweep.py, test_sweep_inputs.py), and stage 7 always runs.
ARGS = ["--recipe", "configs/recipes/demo.sh", *SMALL, "--methods", "none",
        "--n-average", "1", "--extra-train-args", "--max-epoch 2 --max-tokens 4000",
        "--stop-stage", "5"]


def stages_that_ran(stderr: str) -> set[str]:
    """What a run of run.sh did, by its log: the prepared splits (prepare_mustc.py names each
    step it redoes; an up-to-date one says "up to date"), and stages 3-5."""
    ran = {f"prepare {split}" for split in ("train", "dev", "tst-COMMON")
           if re.search(rf"^\[prepare\] {split}: computing features", stderr, re.MULTILINE)}
    patterns = {"train": r"Stage 3: train ", "average": r"Stage 4: average ",
                "offline": r"Stage 5: offline BLEU of \S+ on "}
    ran |= {stage for stage, pattern in patterns.items() if re.search(pattern, stderr)}
    return ran


def _edit_first_line(path: Path, new_first: str) -> None:
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[0] = new_first + "\n"
    path.write_text("".join(lines), encoding="utf-8")


def test_each_changed_input_redoes_exactly_the_stages_downstream_of_it(tmp_path: Path) -> None:
    corpus, exp = tmp_path / "mustc", tmp_path / "exp"
    made = subprocess.run([sys.executable, "scripts/make_corpus.py", "--out", str(corpus),
                           "--n-train", "16", "--n-dev", "2", "--n-test", "2", "--seed", "5"],
                          cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600)
    assert made.returncode == 0, made.stderr[-3000:]

    def rerun(*extra: str) -> set[str]:
        run = run_recipe(*ARGS, "--corpus", "mustc", "--mustc-root", str(corpus),
                         "--exp-dir", str(exp), *extra)
        assert run.returncode == 0, run.stderr[-4000:]
        return stages_that_ran(run.stderr)

    every = {"prepare train", "prepare dev", "prepare tst-COMMON", "train", "average", "offline"}
    assert rerun() == every  # (a re-run that rewrites nothing: test_recipe_demo.py)

    # The test references: the test split is prepared again and decoded again; no training.
    text = corpus / "en-de" / "data"
    _edit_first_line(text / "tst-COMMON" / "txt" / "tst-COMMON.de", "ein ganz neuer satz")
    assert rerun() == {"prepare tst-COMMON", "offline"}
    offline = read_generate(exp / "none" / "generate-tst-COMMON.txt")
    assert "ein ganz neuer satz" in offline.references.values()

    # The dev references: what training reads changed, so it starts afresh (the old model kept).
    _edit_first_line(text / "dev" / "txt" / "dev.de", "noch ein neuer satz")
    assert rerun() == {"prepare dev", "train", "average", "offline"}
    stale = list((exp / "none" / "stale").glob("*/checkpoints/checkpoint_last.pt"))
    assert len(stale) == 1
    train_log = (exp / "none" / "checkpoints" / "train.log").read_text()
    assert "No existing checkpoint found" in train_log  # not resumed: a model of other data

    # Settings: a longer budget resumes the training (the same data), and another --n-average
    # redoes the average; what reads them follows.
    longer = ["--n-average", "2", "--extra-train-args", "--max-epoch 3 --max-tokens 4000"]
    assert rerun(*longer) == {"train", "average", "offline"}
    log = (exp / "none" / "checkpoints" / "train.log").read_text()
    assert re.search(r"Loaded checkpoint \S+none/checkpoints/checkpoint_last\.pt", log)
    assert "| train | epoch 003 |" in log
