"""End-to-end smoke test of the recipe: every stage of scripts/run.sh at tiny sizes.

Makes a 48-utterance grammar corpus, prepares it, pre-trains ASR, trains `none` and `mgcm`,
averages, decodes offline, runs SimulEval at two k and writes the table and the plot.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

TRAIN_ARGS = """
--task speech_to_text_multitask --arch waitk_s2t_transformer_tiny
--criterion st_ctc_asr --ctc-weight 0.3 --asr-weight 0.3
--encoder-chunk-size 4 --pre-decision-ratio 2 --waitk-lagging 3 --waitk-multipath
--optimizer conflict_aware --base-optimizer adam --lr 2e-3 --lr-scheduler inverse_sqrt --warmup-updates 10
--max-tokens 4000 --max-epoch 2 --num-workers 0 --log-format simple --no-progress-bar
"""


@pytest.mark.slow
def test_every_stage_of_the_recipe_runs_and_reports(tmp_path):
    train_args = tmp_path / "smoke.args"
    train_args.write_text(TRAIN_ARGS)
    asr_args = tmp_path / "asr.args"
    asr_args.write_text("--st-weight 0 --ctc-weight 1 --asr-weight 1 --max-epoch 1\n")
    exp = tmp_path / "exp"
    env = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
               OMP_NUM_THREADS="1", PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    command = [
        "bash", str(ROOT / "scripts" / "run.sh"), "--corpus", "builtin",
        "--corpus-sizes", "32 8 8", "--exp-dir", str(exp), "--vocab-size-tgt", "120",
        "--vocab-size-src", "100", "--train-args", str(train_args), "--asr-pretrain", "true",
        "--asr-args", str(asr_args), "--methods", "none mgcm", "--ngpus", "0",
        "--n-average", "2", "--beam", "1", "--k-list", "1 1000", "--segment-size", "160",
        "--eval-max-instances", "4",
    ]
    run = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-4000:]

    for stage in range(8):
        assert f"Stage {stage}:" in run.stderr
    for method in ("none", "mgcm"):
        assert (exp / method / "checkpoint_avg.pt").exists()
        assert "BLEU" in (exp / method / "offline_bleu.txt").read_text()
        rows = (exp / method / "simul" / "results.tsv").read_text().splitlines()
        assert len(rows) == 3  # header + k=1 + k=1000
    table = (exp / "results.md").read_text()
    assert "| none |" in table and "| mgcm |" in table
    assert (exp / "bleu_al.png").read_bytes()[:4] == b"\x89PNG"
    # Only mgcm writes conflict telemetry; `none` has no conflicts to measure.
    assert (exp / "mgcm" / "conflict.jsonl").stat().st_size > 0
    assert (exp / "mgcm" / "conflicts.png").read_bytes()[:4] == b"\x89PNG"

    # Decoding a trained model no longer needs the ASR checkpoint its encoder started from.
    (exp / "asr_pretrain" / "checkpoints" / "checkpoint_best.pt").unlink()
    offline = subprocess.run(command + ["--stage", "5", "--stop-stage", "5", "--methods", "mgcm"],
                             cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert offline.returncode == 0, offline.stderr[-2000:]
    assert "BLEU" in (exp / "mgcm" / "offline_bleu.txt").read_text()

    # A second run skips every finished stage and changes nothing.
    again = subprocess.run(command + ["--stop-stage", "3"], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "already trained" in again.stderr


def test_missing_mustc_root_is_a_clear_error(tmp_path):
    run = subprocess.run(["bash", str(ROOT / "scripts" / "run.sh"), "--exp-dir", str(tmp_path)],
                         cwd=ROOT, env=dict(os.environ, MUSTC_ROOT=""), capture_output=True,
                         text=True, timeout=60)
    assert run.returncode != 0
    assert "MUSTC_ROOT is not set" in run.stderr


def test_unknown_flag_is_named(tmp_path):
    run = subprocess.run(["bash", str(ROOT / "scripts" / "run.sh"), "--no-such-flag", "1"],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert run.returncode != 0 and "--no-such-flag" in run.stderr
