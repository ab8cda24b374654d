"""Every shipped recipe runs end to end, stages 0-7, with its files unchanged but the budget.

The recipes in configs/recipes/ are what users run; these tests run each one through
scripts/run.sh on a small corpus on CPU, overriding only sizes and budgets (corpus size,
vocabulary size, --extra-train-args, --eval-max-instances). They then check each stage's
outputs, that a re-run rewrites nothing, and that bad options stop the run before it writes.
"""
import gzip
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from docs_commands import command_starting, commands

ROOT = Path(__file__).resolve().parents[1]
RUN_SH = ROOT / "scripts" / "run.sh"
README = ROOT / "README.md"
README_RECIPE = "scripts/run.sh --recipe configs/recipes/mustc_s.sh --mustc-root /data/MUSTC_v1.0"
README_COMPARISON = "scripts/run.sh --recipe configs/recipes/compare_grammar.sh"
SMALL = ["--vocab-size-tgt", "120", "--vocab-size-src", "100", "--eval-max-instances", "2"]
BUDGET = "--max-epoch 1 --max-tokens 4000"  # epoch checkpoints, for stage 4 to average


def _env() -> dict[str, str]:
    return dict(os.environ, OMP_NUM_THREADS="1", MGCM_VENV=sys.prefix,
                PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
                PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")


def run_recipe(*args: str, timeout: int = 1500, script: Path = RUN_SH
               ) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(script), *args], cwd=ROOT, env=_env(),
                          capture_output=True, text=True, timeout=timeout)


def readme_command(prefix: str) -> list[str]:
    """A README command as written, without the script (run_recipe adds it)."""
    words = command_starting(README, prefix)
    assert words[0] == "scripts/run.sh"
    return words[1:]


def snapshot(folder: Path) -> dict[str, int]:
    """Modification time of every file under ``folder`` (markers included)."""
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns
            for p in folder.rglob("*") if p.is_file()}


def assert_evaluated(exp: Path, methods: list[str], n_k: int) -> None:
    """Every stage's output of each run (``method`` or ``method/seedN``) and the report."""
    for method in methods:
        assert (exp / method / "checkpoint_avg.pt").is_file()
        assert "BLEU" in (exp / method / "offline_bleu.txt").read_text()
        rows = (exp / method / "simul" / "results.tsv").read_text().splitlines()
        assert len(rows) == 1 + n_k, rows
        peak = (exp / method / "train_peak.json").read_text()
        assert '"legs"' in peak
    table = (exp / "results.md").read_text()
    for method in methods:
        assert f"| {method.replace('/seed', ' seed ')} |" in table
    assert (exp / "bleu_al.png").read_bytes()[:4] == b"\x89PNG"


@pytest.fixture(scope="module")
def mustc_corpus(tmp_path_factory) -> Path:
    """A small corpus in MuST-C v1.0 layout (en-de/data/<split>/{wav,txt}), made once."""
    out = tmp_path_factory.mktemp("mustc")
    run = subprocess.run([sys.executable, "scripts/make_corpus.py", "--out", str(out),
                          "--n-train", "32", "--n-dev", "8", "--n-test", "8", "--seed", "3"],
                         cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    return out


@pytest.mark.slow
def test_demo_recipe_with_asr_pretraining_runs_every_stage_and_a_rerun_rewrites_nothing(tmp_path):
    exp = tmp_path / "exp" / "demo"
    demo = ROOT / "scripts" / "demo.sh"  # the README's command: run.sh --recipe demo.sh
    args = ["--exp-dir", str(exp), "--corpus-sizes", "32 8 8", *SMALL,
            "--extra-train-args", BUDGET, "--asr-pretrain", "true"]
    first = run_recipe(*args, script=demo)
    assert first.returncode == 0, first.stderr[-4000:]
    for stage in range(8):
        assert f"Stage {stage}:" in first.stderr
    assert_evaluated(exp, ["mgcm"], n_k=4)
    assert (exp / "mgcm" / "conflict.jsonl").stat().st_size > 0
    assert (exp / "mgcm" / "conflicts.png").read_bytes()[:4] == b"\x89PNG"

    before = snapshot(exp)
    again = run_recipe(*args, script=demo)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "mgcm already trained with these flags" in again.stderr
    assert "ASR pre-training already trained" in again.stderr
    assert snapshot(exp) == before  # no output or marker was rewritten

    # A changed budget re-enters training (fairseq-train resumes), and only that.
    # The README's own SimulEval commands, as written, on this demo's output (exp/demo/...).
    for command in commands(README):
        if command.startswith(("python -m fairseq_mgcm.data.mustc.source_list", "simuleval ")):
            run = subprocess.run(command, shell=True, cwd=tmp_path, env=_env(),
                                 capture_output=True, text=True, timeout=600)
            assert run.returncode == 0, (command, run.stderr[-3000:])
    assert (exp / "k5" / "instances.log").read_text().count("\n") == 8

    longer = run_recipe(*args[:-4], "--extra-train-args", BUDGET.replace("1", "2", 1),
                        "--asr-pretrain", "true", "--stop-stage", "3", script=demo)
    assert longer.returncode == 0, longer.stderr[-3000:]
    assert "flags changed since it was trained" in longer.stderr
    assert "ASR pre-training already trained" not in longer.stderr  # its flags changed too


@pytest.mark.slow
def test_multi30k_recipe_runs_every_stage(tmp_path):
    src, tgt = ROOT.parent / "shared/data/multi30k/train.en.gz", None
    text_args: list[str] = []
    if not src.is_file():  # the shipped text is beside the checkout; else a small stand-in
        src, tgt = tmp_path / "train.en", tmp_path / "train.de"
        numbers = ["one", "two", "three", "four", "five", "six", "seven", "eight"]
        zahlen = ["eins", "zwei", "drei", "vier", "fünf", "sechs", "sieben", "acht"]
        src.write_text("".join(f"a man sees {n} dogs and {m} cats\n"
                               for n in numbers for m in numbers))
        tgt.write_text("".join(f"ein mann sieht {n} hunde und {m} katzen\n"
                               for n in zahlen for m in zahlen))
        text_args = ["--src-text", str(src), "--tgt-text", str(tgt), "--dev-text", "",
                     "--test-text", ""]  # dev and test held out of the stand-in
    exp = tmp_path / "exp"
    shipped = command_starting(COMPARISON_DOC,
                               "scripts/run.sh --recipe configs/recipes/multi30k.sh")
    run = run_recipe(*shipped[1:], *text_args, "--exp-dir", str(exp),
                     "--corpus-sizes", "32 8 8", *SMALL, "--extra-train-args", BUDGET,
                     "--seeds", "1")  # three seeds: test_seed_comparison_recipe_...
    assert run.returncode == 0, run.stderr[-4000:]
    runs = ["none/seed1", "pcgrad/seed1", "mgcm/seed1"]
    assert_evaluated(exp, runs, n_k=2)  # k = 3 and 7
    # jobs=2: the three runs went two at a time, each logged apart, the table after each
    for run_name in runs:
        log = (exp / "logs" / f"{run_name.replace('/', '_')}.log").read_text()
        assert "Stage 6: SimulEval sweep" in log and "Stage 7" not in log
        assert f"finished {run_name.replace('/', '_')}" in run.stderr
    assert run.stderr.count("Stage 7: results table") >= 3
    assert "### Dev curve" in (exp / "results.md").read_text()
    if not text_args:  # the official sets, their first 8 lines
        dev = (exp / "corpus" / "en-de" / "data" / "dev" / "txt" / "dev.en").read_text()
        with gzip.open(src.parent / "val.en.gz", "rt", encoding="utf-8") as f:
            assert dev.splitlines() == [" ".join(next(f).split()) for _ in range(8)]


@pytest.mark.slow
def test_seed_comparison_recipe_reports_statistics_and_a_rerun_rewrites_nothing(tmp_path):
    exp = tmp_path / "exp"
    args = [*readme_command(README_COMPARISON), "--exp-dir", str(exp),
            "--corpus-sizes", "32 8 8", *SMALL, "--extra-train-args", BUDGET]
    run = run_recipe(*args, timeout=2400)
    assert run.returncode == 0, run.stderr[-4000:]
    methods, seeds = ["none", "pcgrad", "mgcm"], [1, 2, 3]
    for method in methods:
        for seed in seeds:
            root = exp / method / f"seed{seed}"
            assert (root / "generate-tst-COMMON.txt").is_file()
            assert len((root / "simul" / "results.tsv").read_text().splitlines()) == 1 + 4
            log = (root / "checkpoints" / "train.log").read_text()
            assert f"'seed': {seed}," in log and re.search(r"\bmt_loss[ =]\d", log)
    # the table grew seed by seed: stage 7 ran after each seed
    assert run.stderr.count("Stage 7: results table") == 3
    table = (exp / "results.md").read_text()
    for method in methods:
        assert f"| {method} | 3 (1 2 3) |" in table
    for pair in ("mgcm vs. none", "pcgrad vs. none", "mgcm vs. pcgrad"):
        assert f"| offline | {pair} | 1 2 3 | 24 |" in table
        assert f"| k=7 | {pair} | 1 2 3 | 6 |" in table  # --eval-max-instances 2, 3 seeds
    assert "| 1 | " in table.split("### Dev curve")[1]  # epoch 1's dev loss, from train.log
    assert (exp / "bleu_al.png").read_bytes()[:4] == b"\x89PNG"

    before = snapshot(exp)
    again = run_recipe(*args, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "mgcm (seed 3) already trained with these flags" in again.stderr
    assert snapshot(exp) == before


@pytest.mark.slow
def test_paper_recipe_runs_on_cpu_as_shipped(tmp_path, mustc_corpus):
    exp = tmp_path / "exp"
    run = run_recipe(*readme_command(README_RECIPE), "--mustc-root", str(mustc_corpus),
                     "--ngpus", "0", "--exp-dir", str(exp), *SMALL,
                     "--extra-train-args", "--max-update 2 --max-tokens 6000", timeout=2400)
    assert run.returncode == 0, run.stderr[-4000:]
    assert "dropping --fp16" in run.stderr
    assert_evaluated(exp, ["none", "mgcm", "pcgrad", "discard"], n_k=6)
    log = (exp / "mgcm" / "checkpoints" / "train.log").read_text()
    assert "waitk_s2t_transformer_s" in log and "num_updates 2" in log
    assert re.search(r"\bmt_loss[ =]\d", log) and re.search(r"\basr_loss[ =]\d", log)


@pytest.mark.slow
def test_eight_gpu_overlay_trains_as_two_cpu_processes(tmp_path, mustc_corpus):
    exp = tmp_path / "exp"
    command = readme_command(README_RECIPE + " --ngpus 8")
    assert "configs/hardware/8gpu.args" in command
    run = run_recipe(*command, "--mustc-root", str(mustc_corpus), "--ngpus", "0", "--nprocs", "2",
                     "--methods", "mgcm", "--stop-stage", "3", "--exp-dir", str(exp), *SMALL,
                     "--extra-train-args", "--max-update 2 --max-tokens 3000", timeout=1200)
    assert run.returncode == 0, run.stderr[-4000:]
    log = (exp / "mgcm" / "checkpoints" / "train.log").read_text()
    assert "distributed init (rank 0)" in log and "'ddp_backend': 'legacy_ddp'" in log
    rank1 = (exp / "mgcm" / "checkpoints" / "train.rank1.log").read_text()
    assert "distributed init (rank 1)" in rank1
    assert (exp / "mgcm" / "checkpoints" / "checkpoint_last.pt").is_file()


@pytest.mark.parametrize("args, message", [
    (["--stage", "abc"], "--stage 'abc': expected a non-negative integer"),
    (["--ngpus", "two"], "--ngpus 'two': expected a non-negative integer"),
    (["--k-list", "1 x"], "--k-list '1 x': 'x' is not an integer"),
    (["--corpus-sizes", "10 10"], "--corpus-sizes '10 10': expected 3 integers"),
    (["--seeds", "1 2 1"], "--seeds '1 2 1': seed 1 is repeated"),
    (["--seeds", "1 two"], "--seeds '1 two': 'two' is not an integer"),
    (["--jobs", "0"], "--jobs 0: at least one run at a time"),
    (["--jobs", "2", "--ngpus", "1"], "--jobs 2: side-by-side runs are for CPU"),
    (["--overlays", "configs/overlays/nope.args"], "--overlays: configs/overlays/nope.args: no such file"),
    (["--corpus", "text", "--src-text", "README.md", "--tgt-text", "README.md",
      "--dev-text", "val.en"], "--dev-text 'val.en': expected two files, SRC TGT"),
    (["--PATH", "/x"], "unknown option --PATH"),
    (["--no-such-flag", "1"], "unknown option --no-such-flag"),
    (["--recipe", "configs/recipes/nope.sh"], "--recipe configs/recipes/nope.sh: no such file"),
    (["--methods", "mgcm fancy"], "no configs/methods/fancy.args"),
    (["--model-args", "configs/model/xl.args"], "--model-args configs/model/xl.args: no such file"),
    (["--corpus", "mustc", "--mustc-root", ""], "MUSTC_ROOT is not set"),
])
def test_bad_options_exit_2_naming_the_option_before_writing(tmp_path, args, message):
    exp = tmp_path / "exp"
    run = run_recipe("--corpus", "builtin", "--exp-dir", str(exp), *args, timeout=120)
    assert run.returncode == 2, run.stderr
    assert message in run.stderr
    assert not exp.exists()


def test_a_typo_in_a_recipe_file_names_the_file_and_line(tmp_path):
    recipe = tmp_path / "mine.sh"
    recipe.write_text("source configs/recipes/demo.sh\n# comment\nvocab_sise=300\n")
    run = run_recipe("--recipe", str(recipe), "--exp-dir", str(tmp_path / "exp"), timeout=120)
    assert run.returncode == 2
    assert f"{recipe}:3: unknown setting 'vocab_sise'" in run.stderr


def test_a_bad_training_flag_stops_the_run_naming_its_file(tmp_path):
    method = tmp_path / "model.args"
    method.write_text((ROOT / "configs/model/tiny.args").read_text() + "--report-accuracy\n")
    exp = tmp_path / "exp"
    run = run_recipe("--recipe", "configs/recipes/demo.sh", "--model-args", str(method),
                     "--exp-dir", str(exp), timeout=300)
    assert run.returncode == 2
    n_lines = len(method.read_text().splitlines())
    assert f"{method}:{n_lines}: --report-accuracy: unrecognized" in run.stderr
    assert not exp.exists()


def test_on_other_nodes_only_training_runs(tmp_path):
    common = ["--corpus", "builtin", "--exp-dir", str(tmp_path / "exp"), "--nnodes", "2",
              "--node-rank", "1", "--ngpus", "1"]
    prepare = run_recipe(*common, "--stop-stage", "1", timeout=300)
    assert prepare.returncode == 0, prepare.stderr[-2000:]
    for stage in (0, 1):
        assert f"Stage {stage}: skipped on node 1 (node 0 does it)" in prepare.stderr
    evaluate = run_recipe(*common, "--stage", "4", timeout=300)
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
                     "--stage", "4", timeout=300)
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


RECIPE_DOC = ROOT / "docs" / "recipe.md"
COMPARISON_DOC = ROOT / "docs" / "comparison.md"


def test_every_comparison_doc_command_is_a_recipe_the_tests_run():
    """docs/comparison.md's commands: the README's comparison (run by
    test_seed_comparison_recipe_...) and the Multi30k recipe (test_multi30k_recipe_...)."""
    found = commands(COMPARISON_DOC)
    assert sorted(found) == sorted([README_COMPARISON,
                                    "scripts/run.sh --recipe configs/recipes/multi30k.sh"])


def test_every_recipe_doc_command_is_a_tested_form_and_the_multi_node_one_is_accepted(tmp_path):
    """docs/recipe.md's commands are the README's (run above), the CPU multi-process one (the
    test above runs the same flags), and a multi-node one, which needs GPUs: its options and
    every training flag it implies are checked here (``--stage 8`` runs no stage)."""
    docs = [c.replace("$MUSTC_ROOT", "/data/MUSTC_v1.0") for c in commands(RECIPE_DOC)]
    readme = {c for c in commands(README) if c.startswith("scripts/run.sh")}
    cpu = README_RECIPE + " --ngpus 0 --nprocs 2 --hardware-args configs/hardware/8gpu.args"
    nodes = [c for c in docs if "--nnodes" in c]
    for command in docs:
        assert command in readme or command == cpu or command in nodes, command
    assert len(nodes) == 1
    run = run_recipe(*shlex.split(nodes[0])[1:], "--mustc-root", str(tmp_path), "--stage", "8",
                     "--corpus", "builtin", "--exp-dir", str(tmp_path / "exp"), timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
