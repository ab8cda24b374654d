"""The training CMVN travels in the checkpoint; decoding without it is refused (issue 13)."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from agent_testing import single_thread_env

from fairseq_mgcm.agents.checkpoint import load_model
from fairseq_mgcm.checkpoints.cmvn import CmvnMismatch

pytestmark = pytest.mark.slow
REPO = Path(__file__).parents[2]


def data_without_cmvn(data: Path, dest: Path) -> Path:
    """A copy of the prepared data whose config applies no global CMVN (features are read from
    the original zips: ``audio_root`` stays absolute)."""
    shutil.copytree(data, dest, ignore=shutil.ignore_patterns("*.zip", "simuleval"))
    config = yaml.safe_load((dest / "config.yaml").read_text())
    config.pop("global_cmvn")
    config.pop("feature_transforms", None)
    config.pop("transforms", None)
    (dest / "config.yaml").write_text(yaml.safe_dump(config))
    return dest


def test_checkpoint_records_the_training_cmvn(trained_tiny: dict[str, Path]) -> None:
    state = torch.load(trained_tiny["chunk-causal"], map_location="cpu")
    record = state["task_state"]["train_cmvn"]
    assert record["stats_npz_path"].endswith("gcmvn.npz") and len(record["sha256"]) == 64


def test_agent_refuses_a_data_config_without_the_training_cmvn(
    trained_tiny: dict[str, Path], prepared_tiny: Path, tmp_path: Path
) -> None:
    data = data_without_cmvn(prepared_tiny, tmp_path / "data")
    with pytest.raises(CmvnMismatch, match="no global_cmvn, but .* was trained with global CMVN"):
        load_model(trained_tiny["chunk-causal"], data)
    load_model(trained_tiny["chunk-causal"], prepared_tiny)  # the training config loads


def test_fairseq_generate_refuses_a_data_config_without_the_training_cmvn(
    trained_tiny: dict[str, Path], prepared_tiny: Path, tmp_path: Path
) -> None:
    data = data_without_cmvn(prepared_tiny, tmp_path / "data")
    command = [
        str(Path(sys.executable).parent / "fairseq-generate"), str(data),
        "--user-dir", str(REPO / "fairseq_mgcm"), "--config-yaml", "config.yaml",
        "--gen-subset", "tst-COMMON", "--task", "speech_to_text_multitask",
        "--path", str(trained_tiny["chunk-causal"]), "--beam", "1", "--batch-size", "4",
        "--max-len-b", "5", "--cpu",
    ]  # fmt: skip
    result = subprocess.run(
        command, env=single_thread_env(), capture_output=True, text=True, check=False
    )
    assert result.returncode != 0
    # a user error: one line (fairseq_mgcm/errors.py), no traceback
    assert "fairseq-generate: error: " in result.stderr and "Traceback" not in result.stderr
    assert "was trained with global CMVN" in result.stderr
    assert "D-0" not in result.stdout  # nothing decoded
