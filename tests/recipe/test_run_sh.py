"""scripts/run.sh's wiring, end to end but without training: bad options stop it with exit 2
before it writes, a recipe typo and a bad training flag are named with their file, a failing
step stops it, other nodes skip node 0's stages, and a failed side-by-side run is named.

The combinations of options are unit tests of the Python modules (tests/recipe/test_options.py,
test_jobs.py); here each kind of wiring is run once. The docs' run.sh commands are matched to
the tests that run them.
"""
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from docs_commands import commands
from recipe_runs import (
    COMPARISON_DOC,
    README,
    README_COMPARISON,
    README_RECIPE,
    RECIPE_DOC,
    ROOT,
    RUN_SH,
)  # the README's recipe commands are tests/test_recipe_*.py's, defined once


def run_recipe(*args: str, timeout: int = 300, **env: str) -> subprocess.CompletedProcess:
    environment = dict(os.environ, OMP_NUM_THREADS="1", MGCM_VENV=sys.prefix, **env,
                       PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
                       PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    return subprocess.run(["bash", str(RUN_SH), *args], cwd=ROOT, env=environment,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("args, message", [
    (["--stage", "abc"], "ERROR: --stage 'abc': expected a non-negative integer"),
    (["--no-such-flag", "1"], "ERROR: unknown option --no-such-flag (see --help)"),
    (["--corpus", "mustc", "--mustc-root", ""], "ERROR: MUSTC_ROOT is not set"),
    (["--extra-train-args", "--max-update 2"],  # stage 4 would have no epoch checkpoint
     "ERROR: --extra-train-args: --max-update 2 ends training before the end of epoch 5"),
])
def test_bad_options_exit_2_naming_the_option_before_writing(tmp_path, args, message):
    exp = tmp_path / "exp"
    run = run_recipe("--corpus", "builtin", "--exp-dir", str(exp), *args)
    assert run.returncode == 2, run.stderr
    assert message in run.stderr and len(run.stderr.splitlines()) == 1
    assert not exp.exists()


def test_without_the_environment_it_says_to_source_setup_env(tmp_path):
    """A shell where scripts/setup_env.sh was not sourced: a Python without the project's
    packages (here an empty venv's) gets one line naming the command to run, exit 2."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "bare")],
                   check=True)
    env = dict(os.environ, PATH=f"{tmp_path / 'bare' / 'bin'}{os.pathsep}{os.environ['PATH']}")
    env.pop("PYTHONPATH", None)
    run = subprocess.run(["bash", str(RUN_SH), "--help"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == [
        "run.sh: the project's Python environment is not active in this shell: run 'source "
        "scripts/setup_env.sh' first (it creates the environment on its first run)"]


def test_help_prints_the_usage_and_every_option():
    run = run_recipe("--help")
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("The fairseq-mgcm recipe:")
    assert "  --k-list '1 3 5 7 9 1000'" in run.stdout and "  --jobs 1 " in run.stdout


def test_a_typo_in_a_recipe_file_names_the_file_and_line(tmp_path):
    recipe = tmp_path / "mine.sh"
    recipe.write_text("source configs/recipes/demo.sh\n# comment\nvocab_sise=300\n")
    run = run_recipe("--recipe", str(recipe), "--exp-dir", str(tmp_path / "exp"))
    assert run.returncode == 2
    assert f"{recipe}:3: unknown setting 'vocab_sise'" in run.stderr


def test_a_bad_training_flag_stops_the_run_naming_its_file(tmp_path):
    method = tmp_path / "model.args"
    method.write_text((ROOT / "configs/model/tiny.args").read_text() + "--report-accuracy\n")
    exp = tmp_path / "exp"
    run = run_recipe("--recipe", "configs/recipes/demo.sh", "--model-args", str(method),
                     "--exp-dir", str(exp))
    assert run.returncode == 2
    n_lines = len(method.read_text().splitlines())
    assert f"{method}:{n_lines}: --report-accuracy: unrecognized" in run.stderr
    assert "fix the training flags above (nothing was run)" in run.stderr
    assert "INFO" not in run.stderr
    assert not exp.exists()


def test_a_step_that_fails_inside_the_flag_reading_stops_the_recipe(tmp_path):
    """Stage 3 reads its training flags through a command whose failure bash's ``set -e`` did
    not see (``mapfile < <(...)``): the run went on with the flags read so far. Here the check
    before stage 0 is skipped as the --jobs scheduler's runs skip it, so the reading itself
    meets the broken file, and the recipe must stop there, naming the step, before training."""
    model = tmp_path / "model.args"
    model.write_text((ROOT / "configs/model/tiny.args").read_text() + "--lr '1e-3\n")
    exp = tmp_path / "exp"
    run = run_recipe("--recipe", "configs/recipes/demo.sh", "--model-args", str(model),
                     "--exp-dir", str(exp), "--stage", "3", "--stop-stage", "3",
                     MGCM_RECIPE_FLAGS_CHECKED="1")
    assert run.returncode == 1, run.stderr[-2000:]
    assert f"{model}:{len(model.read_text().splitlines())}: cannot split the line" in run.stderr
    assert "ERROR: Stage 3: cannot read the training flags of mgcm (exit 2)" in run.stderr
    assert "Stage 3: train" not in run.stderr and not (exp / "mgcm").exists()


def test_on_other_nodes_only_training_runs(tmp_path):
    common = ["--corpus", "builtin", "--exp-dir", str(tmp_path / "exp"), "--nnodes", "2",
              "--node-rank", "1", "--ngpus", "1"]
    prepare = run_recipe(*common, "--stop-stage", "1")
    assert prepare.returncode == 0, prepare.stderr[-2000:]
    for stage in (0, 1):
        assert f"Stage {stage}: skipped on node 1 (node 0 does it)" in prepare.stderr
    evaluate = run_recipe(*common, "--stage", "4")
    assert evaluate.returncode == 0, evaluate.stderr[-2000:]
    for stage in (4, 5, 6, 7):
        assert f"Stage {stage}: skipped on node 1 (node 0 does it)" in evaluate.stderr
    assert not (tmp_path / "exp" / "corpus").exists()


def test_a_failed_side_by_side_run_is_named_and_no_new_run_starts(tmp_path):
    """--jobs 2 over three methods with nothing trained: stage 4 of the first two runs fails
    (no checkpoints to average, exit 2); the parent names their logs and never starts the
    third. OMP_NUM_THREADS=1 (run_recipe's) must not hide the cores: two runs start."""
    exp = tmp_path / "exp"
    run = run_recipe("--corpus", "builtin", "--exp-dir", str(exp), "--ngpus", "0",
                     "--methods", "none pcgrad mgcm", "--seeds", "1", "--jobs", "2",
                     "--stage", "4")
    assert run.returncode == 1, run.stderr[-2000:]
    for failed in ("none_seed1", "pcgrad_seed1"):
        assert f"ERROR: {failed} failed (exit 2): see {exp}/logs/{failed}.log" in run.stderr
        log = (exp / "logs" / f"{failed}.log").read_text()
        assert "average_checkpoints: no numbered checkpoints" in log
    assert "start mgcm_seed1" not in run.stderr and not (exp / "logs" / "mgcm_seed1.log").exists()
    assert "a run failed; the others finished (re-run to resume)" in run.stderr


def test_every_readme_command_is_run_by_a_test():
    tested = ("scripts/demo.sh", "scripts/test.sh", README_RECIPE, README_COMPARISON,
              "python -m fairseq_mgcm.data.mustc.source_list", "simuleval ")
    for command in commands(README):
        assert command.startswith(tested), f"README command not run by any test: {command}"
    assert len([c for c in commands(README) if c.startswith(README_RECIPE)]) == 2


def test_every_comparison_doc_command_is_a_recipe_the_tests_run():
    """docs/comparison.md's commands: the README's comparison and the Multi30k recipe, both run
    by tests/test_recipe_comparisons.py."""
    found = commands(COMPARISON_DOC)
    assert sorted(found) == sorted([README_COMPARISON,
                                    "scripts/run.sh --recipe configs/recipes/multi30k.sh"])


def test_every_recipe_doc_command_is_a_tested_form_and_the_multi_node_one_is_accepted(tmp_path):
    """docs/recipe.md's commands are the README's (run by tests/test_recipe_mustc_s.py), the CPU
    multi-process one (test_eight_gpu_overlay_... runs the same flags), and a multi-node one,
    which needs GPUs: its options and every training flag it implies are checked here
    (``--stage 8`` runs no stage)."""
    docs = [c.replace("$MUSTC_ROOT", "/data/MUSTC_v1.0") for c in commands(RECIPE_DOC)]
    readme = {c for c in commands(README) if c.startswith("scripts/run.sh")}
    cpu = README_RECIPE + " --ngpus 0 --nprocs 2 --hardware-args configs/hardware/8gpu.args"
    nodes = [c for c in docs if "--nnodes" in c]
    for command in docs:
        assert command in readme or command == cpu or command in nodes, command
    assert len(nodes) == 1
    run = run_recipe(*shlex.split(nodes[0])[1:], "--mustc-root", str(tmp_path), "--stage", "8",
                     "--corpus", "builtin", "--exp-dir", str(tmp_path / "exp"))
    assert run.returncode == 0, run.stderr[-2000:]
