"""The method comparisons: configs/recipes/compare_grammar.sh over seeds and
configs/recipes/multi30k.sh (spoken Multi30k, two runs at a time)."""
from __future__ import annotations

import gzip
import math
from pathlib import Path

import pytest
from build_once import build_once
from docs_commands import command_starting
from recipe_runs import (
    BUDGET,
    COMPARISON_DOC,
    MULTI30K,
    README_COMPARISON,
    ROOT,
    SMALL,
    assert_conflicts_seen_and_not_everywhere,
    assert_losses_fall,
    assert_table_equals_recomputed,
    read_generate,
    readme_command,
    recipe_run,
    run_recipe,
    sacrebleu_bleu,
    snapshot,
)

pytestmark = pytest.mark.slow

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


