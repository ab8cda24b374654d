"""Every shipped recipe runs end to end through its shipped file, once, on a small budget.

The recipes in configs/recipes/ are what users run. Each run here goes through scripts/run.sh
(the demo through scripts/demo.sh, the README's command) on CPU, overriding only sizes and
budgets (corpus size, vocabulary size, seeds, --extra-train-args, --eval-max-instances), and
is checked for what a user reads off it: BLEU above a floor, the results table equal to sacrebleu
recomputed from the hypothesis files, conflict rates strictly between 0 and 1 for every
auxiliary, auxiliary losses that fall, and a re-run that rewrites nothing. Each run is made once
per test run and shared by the tests that read it (tests/build_once.py); a test that changes a
run works on a copy.
"""
from __future__ import annotations

import gzip
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import sacrebleu
from build_once import build_once
from docs_commands import command_starting, commands

from fairseq_mgcm.conflict.telemetry import read_windows
from fairseq_mgcm.recipe.hypotheses import read_generate, read_instances

ROOT = Path(__file__).resolve().parents[1]
RUN_SH = ROOT / "scripts" / "run.sh"
DEMO_SH = ROOT / "scripts" / "demo.sh"
README = ROOT / "README.md"
RECIPE_DOC = ROOT / "docs" / "recipe.md"
COMPARISON_DOC = ROOT / "docs" / "comparison.md"
README_RECIPE = "scripts/run.sh --recipe configs/recipes/mustc_s.sh --mustc-root /data/MUSTC_v1.0"
README_COMPARISON = "scripts/run.sh --recipe configs/recipes/compare_grammar.sh"
MULTI30K = "scripts/run.sh --recipe configs/recipes/multi30k.sh"
SMALL = ["--vocab-size-tgt", "120", "--vocab-size-src", "100", "--eval-max-instances", "2"]
BUDGET = "--max-epoch 1 --max-tokens 4000"  # epoch checkpoints, for stage 4 to average

# The demo, smaller: 800 of its 2,000 training utterances and 10 of its 12 epochs (300 of its
# ~900 updates); everything else as shipped.
DEMO_ARGS = ["--corpus-sizes", "800 20 20", "--extra-train-args", "--max-epoch 10"]
# On this budget the demo reaches BLEU 2.8 and chrF 22 at k = 7 on its 20 test utterances (dev
# ST NLL still falling: 8.7 after epoch 1, 2.5 after epoch 10); a model that has not yet learnt
# from the audio (the same recipe stopped at 128 updates: BLEU 0.6, chrF 11 at every k) stays
# below the floors, which sit at about half of what the budget reaches so that noise (another
# CPU's float rounding) does not fail the test. The full demo reaches BLEU 47 (README).
BLEU_FLOOR = 1.5
CHRF_FLOOR = 15.0


def _env() -> dict[str, str]:
    return dict(os.environ, OMP_NUM_THREADS="1", MGCM_VENV=sys.prefix,
                PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
                PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")


def run_recipe(*args: str, timeout: int = 1500, script: Path = RUN_SH
               ) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(script), *args], cwd=ROOT, env=_env(),
                          capture_output=True, text=True, timeout=timeout)


def recipe_run(folder: Path, *args: str, script: Path = RUN_SH) -> Path:
    """Run a recipe into ``folder/exp`` for a ``build_once`` fixture; its stderr goes to
    ``folder/run.log``. Returns the experiment folder."""
    exp = folder / "exp"
    run = run_recipe(*args, "--exp-dir", str(exp), script=script, timeout=1800)
    (folder / "run.log").write_text(run.stderr)
    assert run.returncode == 0, run.stderr[-4000:]
    return exp


def readme_command(prefix: str) -> list[str]:
    """A README command as written, without the script (run_recipe adds it)."""
    words = command_starting(README, prefix)
    assert words[0] == "scripts/run.sh"
    return words[1:]


def snapshot(folder: Path) -> dict[str, int]:
    """Modification time of every file under ``folder`` (markers included)."""
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns
            for p in folder.rglob("*") if p.is_file()}


# ---------------------------------------------------------------------------------------------
# what a user reads off a run
# ---------------------------------------------------------------------------------------------


def table_rows(results_md: Path) -> list[list[str]]:
    """The cells of every table row of ``results.md`` (header and rule rows left out)."""
    rows = []
    for line in results_md.read_text(encoding="utf-8").splitlines():
        if line.startswith("|") and not line.startswith("|---"):
            rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def sacrebleu_bleu(hypotheses: dict[int, str], references: dict[int, str]) -> float:
    order = sorted(hypotheses)
    return sacrebleu.corpus_bleu([hypotheses[i] for i in order],
                                 [[references[i] for i in order]]).score


def assert_table_equals_recomputed(exp: Path, run: str, label: str, test_set: str) -> None:
    """``results.md``'s offline BLEU and every k's BLEU of ``run`` (a folder under ``exp``,
    labelled ``label`` in the table) equal sacrebleu recomputed from the hypothesis files."""
    rows = table_rows(exp / "results.md")
    offline = read_generate(exp / run / f"generate-{test_set}.txt")
    [offline_row] = [r for r in rows if r[0] == label and len(r) == 5]
    assert float(offline_row[1]) == pytest.approx(
        sacrebleu_bleu(offline.hypotheses, offline.references), abs=0.006)
    simul = sorted((exp / run / "simul").glob("k*_seg*/instances.log"))
    assert simul, f"no SimulEval runs under {exp / run / 'simul'}"
    for log in simul:
        k = re.match(r"k(\d+)_seg", log.parent.name).group(1)
        [row] = [r for r in rows if r[:2] == [label, k]]
        instances = read_instances(log)
        assert float(row[2]) == pytest.approx(
            sacrebleu_bleu(instances.hypotheses, instances.references), abs=0.006), log


def conflict_rates(telemetry: Path) -> dict[str, float]:
    """Per task pair, the share of (update, module) checks that conflicted."""
    conflicts: dict[str, int] = {}
    checks: dict[str, int] = {}
    for window in read_windows(telemetry):
        for tally in window.modules:
            conflicts[tally.pair] = conflicts.get(tally.pair, 0) + tally.conflicts
            checks[tally.pair] = checks.get(tally.pair, 0) + tally.n
    return {pair: conflicts[pair] / checks[pair] for pair in checks}


def assert_conflicts_seen_and_not_everywhere(telemetry: Path, auxiliaries: set[str]) -> None:
    rates = conflict_rates(telemetry)
    assert auxiliaries <= set(rates), rates
    for pair in auxiliaries:
        assert 0 < rates[pair] < 1, f"{telemetry}: conflict rate {pair} {rates[pair]}"


_EPOCH = re.compile(r"\| train \| epoch (\d+) \|(.*)")


def epoch_losses(train_log: Path, task: str) -> list[float]:
    """``<task>_loss`` of each training epoch's summary line in fairseq's log."""
    losses = []
    for line in train_log.read_text(encoding="utf-8").splitlines():
        found = _EPOCH.search(line)
        if found:
            value = re.search(rf"\b{task}_loss[ =]([0-9.]+)", found.group(2))
            assert value, line
            losses.append(float(value.group(1)))
    return losses


def assert_losses_fall(train_log: Path, tasks: tuple[str, ...]) -> None:
    for task in tasks:
        losses = epoch_losses(train_log, task)
        assert len(losses) >= 2 and losses[-1] < losses[0], f"{train_log}: {task} {losses}"


# ---------------------------------------------------------------------------------------------
# the demo (scripts/demo.sh): made once, read by the tests below
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``exp/demo`` of ``scripts/demo.sh`` with DEMO_ARGS; its stderr in ``../../run.log``."""
    folder = build_once(tmp_path_factory, "demo_run",
                        lambda folder: recipe_run(folder, *DEMO_ARGS, script=DEMO_SH))
    return folder / "exp"


pytestmark = pytest.mark.slow
demo_group = pytest.mark.xdist_group("demo")


@demo_group
def test_demo_runs_every_stage_and_reaches_a_bleu_floor_at_its_largest_k(demo):
    log = (demo.parent / "run.log").read_text()
    for stage in (0, 1, 3, 4, 5, 6, 7):
        assert f"Stage {stage}:" in log
    results = (demo / "mgcm" / "simul" / "results.tsv").read_text().splitlines()
    header = results[0].split("\t")
    rows = [dict(zip(header, line.split("\t"))) for line in results[1:]]
    assert [int(r["k"]) for r in rows] == [1, 3, 5, 7]  # configs/recipes/demo.sh
    largest = rows[-1]
    assert int(largest["n_instances"]) == 20
    assert float(largest["BLEU"]) >= BLEU_FLOOR, rows
    instances = read_instances(demo / "mgcm" / "simul" / "k7_seg160" / "instances.log")
    order = sorted(instances.hypotheses)
    chrf = sacrebleu.corpus_chrf([instances.hypotheses[i] for i in order],
                                 [[instances.references[i] for i in order]]).score
    assert chrf >= CHRF_FLOOR
    assert float(largest["AL"]) > float(rows[0]["AL"])  # a larger k waits longer
    offline = read_generate(demo / "mgcm" / "generate-tst-COMMON.txt")
    assert sacrebleu_bleu(offline.hypotheses, offline.references) >= BLEU_FLOOR
    assert (demo / "bleu_al.png").read_bytes()[:4] == b"\x89PNG"


@demo_group
def test_demo_results_table_equals_sacrebleu_recomputed_from_the_hypotheses(demo):
    assert_table_equals_recomputed(demo, "mgcm", "mgcm", "tst-COMMON")


@demo_group
def test_demo_mgcm_sees_conflicts_on_some_modules_and_its_auxiliary_losses_fall(demo):
    assert_conflicts_seen_and_not_everywhere(demo / "mgcm" / "conflict.jsonl", {"ctc", "asr"})
    rates = conflict_rates(demo / "mgcm" / "conflict.jsonl")
    [row] = [r for r in table_rows(demo / "results.md") if r[0] == "mgcm" and len(r) == 5]
    assert row[4] == ", ".join(f"{pair} {rates[pair]:.3f}" for pair in sorted(rates))
    assert_losses_fall(demo / "mgcm" / "checkpoints" / "train.log", ("st", "ctc", "asr"))
    assert (demo / "mgcm" / "conflicts.png").read_bytes()[:4] == b"\x89PNG"


@demo_group
def test_demo_rerun_rewrites_nothing_and_the_readme_simuleval_commands_run_on_it(demo, tmp_path):
    before = snapshot(demo)
    again = run_recipe(*DEMO_ARGS, "--exp-dir", str(demo), script=DEMO_SH)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "mgcm already trained with these flags" in again.stderr
    assert snapshot(demo) == before  # no output or marker was rewritten

    # The README's SimulEval commands, as written, in a folder whose exp/demo holds the demo's
    # data and model (their outputs land in this test's folder, not in the shared run).
    (tmp_path / "exp" / "demo").mkdir(parents=True)
    for name in ("data", "mgcm"):
        (tmp_path / "exp" / "demo" / name).symlink_to(demo / name)
    for command in commands(README):
        if command.startswith(("python -m fairseq_mgcm.data.mustc.source_list", "simuleval ")):
            run = subprocess.run(command, shell=True, cwd=tmp_path, env=_env(),
                                 capture_output=True, text=True, timeout=600)
            assert run.returncode == 0, (command, run.stderr[-3000:])
    instances = read_instances(tmp_path / "exp" / "demo" / "k5" / "instances.log")
    assert len(instances) == 20
    k5 = (demo / "mgcm" / "simul" / "k5_seg160" / "instances.log")
    assert instances.hypotheses == read_instances(k5).hypotheses  # the sweep's k = 5, as typed


@demo_group
def test_a_changed_budget_retrains_and_asr_pretraining_feeds_the_encoder(demo, tmp_path):
    """On a copy of the demo: ``--asr-pretrain true`` and a longer budget re-enter stages 2-3
    (fairseq-train resumes the ST model; the ASR model trains from scratch), and only those."""
    exp = tmp_path / "demo"
    shutil.copytree(demo, exp, symlinks=True)  # copy2: modification times kept, markers valid
    updates = int(re.findall(r"num_updates (\d+)",
                             (exp / "mgcm" / "checkpoints" / "train.log").read_text())[-1])
    longer = f"--max-update {updates + 2} --max-tokens 4000 --warmup-updates 50"
    run = run_recipe(*DEMO_ARGS[:2], "--extra-train-args", longer, "--asr-pretrain", "true",
                     "--stop-stage", "3", "--exp-dir", str(exp), script=DEMO_SH)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Stage 0: corpus" in run.stderr and "Stage 1: prepared data" in run.stderr
    assert "Stage 2: train ASR pre-training" in run.stderr
    assert "mgcm: flags changed since it was trained" in run.stderr
    log = (exp / "mgcm" / "checkpoints" / "train.log").read_text()
    assert f"num_updates {updates + 2}" in log
    assert str(exp / "asr_pretrain" / "checkpoints" / "checkpoint_best.pt") in log


# ---------------------------------------------------------------------------------------------
# the method comparisons: the grammar corpus over seeds, and spoken Multi30k
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def comparison(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The README's comparison (none, PCGrad, MGCM with the MT overlay) on two seeds, not
    three, of a small corpus."""
    args = [*readme_command(README_COMPARISON), "--corpus-sizes", "32 8 8", *SMALL,
            "--seeds", "1 2", "--extra-train-args", "--max-epoch 2 --max-tokens 2000"]
    return build_once(tmp_path_factory, "comparison_run",
                      lambda folder: recipe_run(folder, *args)) / "exp"


@pytest.mark.xdist_group("comparison")
def test_seed_comparison_reports_statistics_equal_to_sacrebleu_and_real_conflicts(comparison):
    exp = comparison
    log = (exp.parent / "run.log").read_text()
    assert log.count("Stage 7: results table") == 2  # the table grew seed by seed
    table = (exp / "results.md").read_text()
    for method in ("none", "pcgrad", "mgcm"):
        assert f"| {method} | 2 (1 2) |" in table
        for seed in (1, 2):
            run = exp / method / f"seed{seed}"
            train_log = run / "checkpoints" / "train.log"
            assert f"'seed': {seed}," in train_log.read_text()
            assert_losses_fall(train_log, ("st", "ctc", "asr", "mt"))
            if method != "none":
                assert_conflicts_seen_and_not_everywhere(run / "conflict.jsonl",
                                                         {"ctc", "asr", "mt"})
    for pair in ("mgcm vs. none", "pcgrad vs. none", "mgcm vs. pcgrad"):
        assert f"| offline | {pair} | 1 2 | 16 |" in table  # 8 test sentences x 2 seeds
        assert f"| k=7 | {pair} | 1 2 | 4 |" in table  # --eval-max-instances 2
    # The mean offline BLEU of each method is the mean of sacrebleu over its seeds' files.
    for method in ("none", "pcgrad", "mgcm"):
        scores = []
        for seed in (1, 2):
            offline = read_generate(exp / method / f"seed{seed}" / "generate-tst-COMMON.txt")
            scores.append(sacrebleu_bleu(offline.hypotheses, offline.references))
        mean = sum(scores) / 2
        sd = math.sqrt(sum((s - mean) ** 2 for s in scores))  # sample sd of two: |a - b| / sqrt 2
        assert f"| {method} | 2 (1 2) | {mean:.2f} ± {sd:.2f} |" in table
    assert "| 1 | " in table.split("### Dev curve")[1]  # epoch 1's dev loss, from train.log
    assert (exp / "bleu_al.png").read_bytes()[:4] == b"\x89PNG"

    before = snapshot(exp)
    again = run_recipe(*readme_command(README_COMPARISON), "--corpus-sizes", "32 8 8", *SMALL,
                       "--seeds", "1 2", "--extra-train-args", "--max-epoch 2 --max-tokens 2000",
                       "--exp-dir", str(exp), timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "mgcm (seed 2) already trained with these flags" in again.stderr
    assert snapshot(exp) == before


@pytest.mark.xdist_group("multi30k")
def test_multi30k_recipe_runs_every_stage_two_runs_at_a_time(tmp_path):
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
    shipped = command_starting(COMPARISON_DOC, MULTI30K)
    run = run_recipe(*shipped[1:], *text_args, "--exp-dir", str(exp),
                     "--corpus-sizes", "32 8 8", *SMALL, "--extra-train-args", BUDGET,
                     "--seeds", "1")  # seeds over statistics: test_seed_comparison_...
    assert run.returncode == 0, run.stderr[-4000:]
    runs = ["none/seed1", "pcgrad/seed1", "mgcm/seed1"]
    # jobs=2: the three runs went two at a time, each logged apart, the table after each
    for run_name in runs:
        log = (exp / "logs" / f"{run_name.replace('/', '_')}.log").read_text()
        assert "Stage 6: SimulEval sweep" in log and "Stage 7" not in log
        assert f"finished {run_name.replace('/', '_')}" in run.stderr
        assert_table_equals_recomputed(exp, run_name, run_name.replace("/seed", " seed "),
                                       "tst-COMMON")
    assert run.stderr.count("Stage 7: results table") >= 3
    assert "### Dev curve" in (exp / "results.md").read_text()
    if not text_args:  # the official sets, their first 8 lines
        dev = (exp / "corpus" / "en-de" / "data" / "dev" / "txt" / "dev.en").read_text()
        with gzip.open(src.parent / "val.en.gz", "rt", encoding="utf-8") as f:
            assert dev.splitlines() == [" ".join(next(f).split()) for _ in range(8)]


# ---------------------------------------------------------------------------------------------
# the paper's recipe (MuST-C layout, the paper-size model), on CPU
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mustc_corpus(tmp_path_factory) -> Path:
    """A small corpus in MuST-C v1.0 layout (en-de/data/<split>/{wav,txt}), made once."""
    out = tmp_path_factory.mktemp("mustc")
    run = subprocess.run([sys.executable, "scripts/make_corpus.py", "--out", str(out),
                          "--n-train", "32", "--n-dev", "8", "--n-test", "8", "--seed", "3"],
                         cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    return out


@pytest.mark.xdist_group("paper")
def test_paper_recipe_runs_on_cpu_as_shipped(tmp_path, mustc_corpus):
    exp = tmp_path / "exp"
    run = run_recipe(*readme_command(README_RECIPE), "--mustc-root", str(mustc_corpus),
                     "--ngpus", "0", "--exp-dir", str(exp), *SMALL,
                     "--extra-train-args", "--max-update 2 --max-tokens 6000", timeout=2400)
    assert run.returncode == 0, run.stderr[-4000:]
    assert "dropping --fp16" in run.stderr
    for method in ("none", "mgcm", "pcgrad", "discard"):
        rows = (exp / method / "simul" / "results.tsv").read_text().splitlines()
        assert [line.split("\t")[0] for line in rows[1:]] == ["1", "3", "5", "7", "9", "1000"]
        assert_table_equals_recomputed(exp, method, method, "tst-COMMON")
    log = (exp / "mgcm" / "checkpoints" / "train.log").read_text()
    assert "waitk_s2t_transformer_s" in log and "num_updates 2" in log
    assert re.search(r"\bmt_loss[ =]\d", log) and re.search(r"\basr_loss[ =]\d", log)


@pytest.mark.xdist_group("paper")
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
