"""Trained tiny checkpoints for the end-to-end agent tests (made once per test session).

Each is a short ``fairseq-train`` run, the command a user would type, of the tiny wait-k model
on the ``prepared_tiny`` corpus (tests/conftest.py): enough for the model to say something
sentence-like, which is all the agent tests need.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from agent_testing import single_thread_env

REPO = Path(__file__).parents[2]
TRAIN_UPDATES = 120
ENCODERS = {
    "chunk-causal": ["--encoder-chunk-size", "4"],
    "bidirectional": ["--encoder-chunk-size", "0"],
}


def train_tiny(data: Path, save_dir: Path, encoder_args: list[str]) -> Path:
    fairseq_train = Path(sys.executable).parent / "fairseq-train"
    command = [
        str(fairseq_train), str(data), "--user-dir", str(REPO / "fairseq_mgcm"),
        "--config-yaml", "config.yaml", "--train-subset", "train", "--valid-subset", "dev",
        "--task", "speech_to_text_multitask", "--arch", "waitk_s2t_transformer_tiny",
        "--criterion", "st_ctc_asr", *encoder_args, "--pre-decision-ratio", "4",
        "--waitk-lagging", "3", "--optimizer", "adam", "--lr", "2e-3",
        "--lr-scheduler", "inverse_sqrt", "--warmup-updates", "40", "--max-tokens", "12000",
        "--max-update", str(TRAIN_UPDATES), "--num-workers", "0", "--no-epoch-checkpoints",
        "--save-dir", str(save_dir), "--cpu", "--seed", "1", "--log-format", "simple",
        "--no-progress-bar", "--disable-validation",
    ]  # fmt: skip
    result = subprocess.run(command, env=single_thread_env(), capture_output=True, text=True)
    checkpoint = save_dir / "checkpoint_last.pt"
    if result.returncode != 0 or not checkpoint.is_file():
        log = f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        raise RuntimeError(f"fairseq-train failed:\n{log}")
    return checkpoint


@pytest.fixture(scope="session")
def trained_tiny(prepared_tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``{"chunk-causal": checkpoint, "bidirectional": checkpoint}``, wait-k 3, r = 4."""
    root = tmp_path_factory.mktemp("trained_tiny")
    return {
        name: train_tiny(prepared_tiny, root / name.replace("-", "_"), args)
        for name, args in ENCODERS.items()
    }
