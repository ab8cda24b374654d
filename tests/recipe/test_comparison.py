"""Methods over seeds: means and spreads, chrF, cost ratios, and sacrebleu's paired tests, from
run folders laid out as scripts/run.sh --seeds writes them (real hypothesis files)."""
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
from sacrebleu.metrics.bleu import BLEU

from fairseq_mgcm.recipe.comparison import compare, comparison_markdown
from fairseq_mgcm.recipe.plot import plot_bleu_al
from fairseq_mgcm.recipe.results import collect
from fairseq_mgcm.recipe.significance import paired_test

ROOT = Path(__file__).resolve().parents[2]
# Approximate randomization trials in these tests: a tenth of the default, plenty for the
# gains (p < 0.01 needs fewer than 100 of 1,000 trials as extreme) and ties asserted here.
TRIALS = 1_000
WORDS = ("der die das mann frau hund katze sieht gibt haus baum rot blau gross klein "
         "heute morgen und oder nicht").split()
HEADER = "k\tsegment_size\tBLEU\tAL\tLAAL\tAP\tDAL\tATD\tStartOffset\tEndOffset\tAL_CA\toutput\n"


def _references(n: int = 120) -> list[str]:
    rng = random.Random(0)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 12))) for _ in range(n)]


def _degrade(refs: list[str], drop: float, seed: int) -> list[str]:
    """Each word kept with probability 1 - drop: a system of a chosen quality."""
    rng = random.Random(seed)
    return [" ".join(w for w in r.split() if rng.random() >= drop) or r.split()[0] for r in refs]


def _write_run(root: Path, hyps: list[str], refs: list[str], al: float,
               rss: float, wall: float) -> None:
    root.mkdir(parents=True)
    generate = "".join(f"S-{i}\tsrc\nT-{i}\t{r}\nH-{i}\t-0.5\t{h}\nD-{i}\t-0.5\t{h}\n"
                       for i, (h, r) in reversed(list(enumerate(zip(hyps, refs)))))
    score = BLEU().corpus_score(hyps, [refs])
    bleu, last = score.score, f"Generate tst-COMMON with beam=1: {score.format()}\n"
    (root / "generate-tst-COMMON.txt").write_text(generate + last)  # fairseq-generate's format
    (root / "offline_bleu.txt").write_text(last)
    run = root / "simul" / "k3_seg160"
    run.mkdir(parents=True)
    run.joinpath("instances.log").write_text("".join(
        json.dumps({"index": i, "prediction": h, "reference": r}) + "\n"
        for i, (h, r) in enumerate(zip(hyps, refs))))
    (root / "simul" / "results.tsv").write_text(
        HEADER + f"3\t160\t{bleu}\t{al}\t{al + 5}\t0.7\t{al + 50}\t1\t1\t1\t{al + 20}\t/elsewhere/k3_seg160\n")
    (root / "train_peak.json").write_text(json.dumps({"peak_rss_mb": rss, "wall_s": wall,
                                                      "cpu_s": wall * 2}))


@pytest.fixture()
def three_seeds(tmp_path: Path) -> Path:
    """none (40% of words dropped), mgcm (10%), pcgrad (10%, other words), discard (the same
    words as mgcm), 3 seeds each."""
    refs = _references()
    for seed in (1, 2, 3):
        _write_run(tmp_path / "none" / f"seed{seed}", _degrade(refs, 0.4, seed), refs,
                   900.0 + seed, rss=1000.0, wall=100.0)
        good = _degrade(refs, 0.1, 10 + seed)
        _write_run(tmp_path / "mgcm" / f"seed{seed}", good, refs, 910.0 + seed,
                   rss=1100.0, wall=150.0)
        _write_run(tmp_path / "pcgrad" / f"seed{seed}", _degrade(refs, 0.1, 20 + seed), refs,
                   910.0 + seed, rss=1500.0, wall=160.0)
        _write_run(tmp_path / "discard" / f"seed{seed}", good, refs, 910.0 + seed,
                   rss=1100.0, wall=150.0)
    return tmp_path


def test_a_real_gain_is_significant_and_no_difference_is_not(three_seeds):
    methods = ["none", "pcgrad", "mgcm", "discard"]
    comparison = compare(collect(three_seeds, methods, [1, 2, 3]), "tst-COMMON", TRIALS)
    assert comparison.missing == []
    gain = comparison.tests[("offline", "mgcm", "none")]
    assert gain.seeds == (1, 2, 3) and gain.n_sentences == 3 * 120
    assert gain.bleu_delta > 10 and gain.bleu_p < 0.01 and gain.chrf_p < 0.01
    alike = comparison.tests[("wait-k k=3", "mgcm", "pcgrad")]  # same quality, other errors
    assert abs(alike.bleu_delta) < 2 and alike.bleu_p > 0.05 and alike.chrf_p > 0.05
    discard = {seed: comparison.methods[3].decodings["offline"].translations[seed]
               for seed in (1, 2, 3)}
    mgcm = comparison.methods[2].decodings["offline"].translations
    identical = paired_test(mgcm, discard)
    assert identical is not None and identical.bleu_delta == 0 and identical.bleu_p == 1.0
    (sys_mean, sys_ci), (base_mean, base_ci) = gain.system_bleu, gain.baseline_bleu
    assert sys_ci > 0 and base_ci > 0 and sys_mean - sys_ci > base_mean + base_ci


def test_markdown_has_means_spreads_ratios_and_p_values(three_seeds):
    comparison = compare(collect(three_seeds, ["none", "pcgrad", "mgcm"], [1, 2, 3]), "tst-COMMON",
                         TRIALS)
    text = comparison_markdown(comparison)
    assert "| none | 3 (1 2 3) |" in text
    assert "| 1100 ± 0 | 1.10 | 300 ± 0 | 1.50 | 150 ± 0 | 1.50 |" in text  # ratios to none
    assert "| wait-k k=3 | none | 3 |" in text and "| 902 | 907 | 922 | 952 |" in text  # latency means
    assert "| offline | mgcm vs. none | 1 2 3 | 360 |" in text
    bleus = [float(line.split("|")[4].split("±")[0]) for line in text.splitlines()
             if line.startswith("| offline | none | 3 |")]
    assert len(bleus) == 1 and 10 < bleus[0] < 60


def test_a_missing_hypothesis_file_is_named_and_the_other_seeds_are_used(three_seeds):
    lost = three_seeds / "mgcm" / "seed3" / "generate-tst-COMMON.txt"
    lost.unlink()
    comparison = compare(collect(three_seeds, ["none", "mgcm"], [1, 2, 3]), "tst-COMMON", TRIALS)
    assert str(lost) in comparison.missing
    assert comparison.tests[("offline", "mgcm", "none")].seeds == (1, 2)
    assert comparison.tests[("wait-k k=3", "mgcm", "none")].seeds == (1, 2, 3)
    text = comparison_markdown(comparison)
    assert "| offline | mgcm | 2 |" in text and str(lost) in text


def test_report_script_writes_table_and_plot_and_refuses_repeated_seeds(three_seeds):
    run = subprocess.run([sys.executable, "scripts/report_results.py", "--exp-dir", str(three_seeds),
                          "--methods", "none", "mgcm", "--seeds", "1", "2", "3", "4",
                          "--trials", str(TRIALS)],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert f"missing, left out: {three_seeds / 'mgcm' / 'seed4'}: no results" in run.stderr
    table = (three_seeds / "results.md").read_text()
    assert "| mgcm seed 2 |" in table and "p (BLEU)" in table and "1,000 trials" in table
    assert (three_seeds / "bleu_al.png").read_bytes()[:4] == b"\x89PNG"
    again = subprocess.run([sys.executable, "scripts/report_results.py", "--exp-dir", str(three_seeds),
                            "--methods", "none", "--seeds", "1", "1"],
                           cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert again.returncode == 2 and "--seeds 1 1: a seed is repeated" in again.stderr


def test_plot_draws_mean_curves_over_seeds(three_seeds, tmp_path):
    png = plot_bleu_al(collect(three_seeds, ["none", "mgcm"], [1, 2, 3]), tmp_path / "p.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# Validation lines as fairseq-train logs them (from a Multi30k run of the recipe), trimmed.
VALID_LINE = ("2026-12-02 19:07:46 | INFO | dev | epoch {epoch:03d} | valid on 'dev' subset | "
              "loss 12.822 | nll_loss {nll} | st_loss 7.119 | st_nll_loss {nll} | ctc_loss 6.844 | "
              "ppl 96.4853 | wps 3758.6 | wpb 431.2 | bsz 18.1 | num_updates 213\n")


def test_dev_curve_is_read_from_train_logs_and_a_resumed_epoch_counts_once(three_seeds):
    for seed, offset in ((1, 0.0), (2, 0.2)):
        log = three_seeds / "none" / f"seed{seed}" / "checkpoints" / "train.log"
        log.parent.mkdir()
        lines = [VALID_LINE.format(epoch=1, nll=6.5 + offset),
                 "2026-12-02 19:08:00 | INFO | train_inner | epoch 002:  20 / 213 loss=9.0, "
                 "nll_loss=5.0\n",
                 VALID_LINE.format(epoch=2, nll=9.9),  # killed; the resumed run logs epoch 2 again
                 VALID_LINE.format(epoch=2, nll=5.5 + offset)]
        log.write_text("".join(lines))
    runs = collect(three_seeds, ["none", "mgcm"], [1, 2, 3])
    assert runs[0].dev_curve == {1: 6.5, 2: 5.5} and runs[2].dev_curve == {}
    markdown = comparison_markdown(compare(runs, "tst-COMMON", TRIALS))
    assert "| epoch | none | mgcm |" in markdown
    assert "| 1 | 6.600 (97.0) n=2 | - |" in markdown
    assert "| 2 | 5.600 (48.5) n=2 | - |" in markdown
