"""Tiny trained checkpoints for the end-to-end agent and docs tests (made once per test run).

Each is a short ``fairseq-train`` run, the command a user would type, of the tiny wait-k model
on the ``prepared_tiny`` corpus (tests/conftest.py): enough for the model to say something
sentence-like, which is all those tests need. The fixture ``trained_tiny`` (tests/conftest.py)
trains both encoders side by side, once per test run.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).parents[1]
TRAIN_UPDATES = 80
ENCODERS = {
    "chunk-causal": ["--encoder-chunk-size", "4"],
    "bidirectional": ["--encoder-chunk-size", "0"],
}


def train_command(data: Path, save_dir: Path, encoder_args: list[str]) -> list[str]:
    """fairseq-train's command line, through the recipe's launcher (``fairseq_mgcm/cli.py``:
    fairseq-train itself, started without loading scikit-learn)."""
    return [
        sys.executable, "-m", "fairseq_mgcm.cli", "train", str(data),
        "--user-dir", str(REPO / "fairseq_mgcm"),
        "--config-yaml", "config.yaml", "--train-subset", "train", "--valid-subset", "dev",
        "--task", "speech_to_text_multitask", "--arch", "waitk_s2t_transformer_tiny",
        "--criterion", "st_ctc_asr", *encoder_args, "--pre-decision-ratio", "4",
        "--waitk-lagging", "3", "--optimizer", "adam", "--lr", "2e-3",
        "--lr-scheduler", "inverse_sqrt", "--warmup-updates", "40", "--max-tokens", "12000",
        "--max-update", str(TRAIN_UPDATES), "--num-workers", "0", "--no-epoch-checkpoints",
        "--save-dir", str(save_dir), "--cpu", "--seed", "1", "--log-format", "simple",
        "--no-progress-bar", "--disable-validation",
    ]  # fmt: skip


def train_tiny(data: Path, save_dirs: dict[str, Path]) -> dict[str, Path]:
    """Train one tiny model per encoder of ``save_dirs`` (``ENCODERS`` names), side by side on
    one thread each; ``{name: checkpoint_last.pt}``."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    runs = {
        name: subprocess.Popen(train_command(data, save_dir, ENCODERS[name]), env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
        for name, save_dir in save_dirs.items()
    }
    checkpoints = {}
    for name, run in runs.items():
        log = run.communicate()[0]
        checkpoint = save_dirs[name] / "checkpoint_last.pt"
        if run.returncode != 0 or not checkpoint.is_file():
            raise RuntimeError(f"fairseq-train ({name}) failed:\n{log[-3000:]}")
        checkpoints[name] = checkpoint
    return checkpoints
