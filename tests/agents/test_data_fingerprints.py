"""A checkpoint knows its dictionaries: every loader refuses a data folder whose dictionary has
the same size but another order (issue 20, item 3: BLEU 35 -> 0.3 with no warning before).

Each test copies the prepared data, checks that the copy is accepted (the check compares
content, not paths), then permutes a dictionary's lines in place and checks that the loader
refuses it with one line naming the checkpoint and the file: a cached model or record of the
unpermuted copy must not hide the change.
"""
from __future__ import annotations

import hashlib
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from agent_testing import single_thread_env

from fairseq_mgcm.agents.checkpoint import load_model, load_model_cached
from fairseq_mgcm.checkpoints.data_files import DataFileMismatch

pytestmark = pytest.mark.slow
REPO = Path(__file__).parents[2]
REFUSAL = "(another dictionary): use the data folder it was trained on"


def data_copy(data: Path, dest: Path) -> Path:
    """The prepared data without its features and wavs (no loader here reads them before the
    check): the config, dictionaries, SentencePiece models, CMVN and SimulEval lists."""
    shutil.copytree(data, dest, ignore=shutil.ignore_patterns("*.zip", "*.wav"))
    return dest


def permute(dictionary: Path) -> None:
    """Reverse the dictionary's lines: the same symbols and size, another order."""
    lines = dictionary.read_text(encoding="utf-8").splitlines(keepends=True)
    dictionary.write_text("".join(reversed(lines)), encoding="utf-8")


def dictionary_file(data: Path, key: str) -> Path:
    return data / yaml.safe_load((data / "config.yaml").read_text())[key]


def test_checkpoint_records_its_dictionaries_and_sentencepiece_models(
    trained_tiny: dict[str, Path], prepared_tiny: Path
) -> None:
    record = torch.load(trained_tiny["chunk-causal"], map_location="cpu")["task_state"][
        "data_files"]
    assert sorted(record) == ["source SentencePiece model", "source dictionary",
                              "target SentencePiece model", "target dictionary"]
    model = record["target SentencePiece model"]
    assert model["path"].endswith("spm_tgt.model")
    assert model["sha256"] == hashlib.sha256(Path(model["path"]).read_bytes()).hexdigest()
    lines = dictionary_file(prepared_tiny, "vocab_filename").read_text().splitlines()
    symbols = "\n".join(line.rsplit(" ", 1)[0] for line in lines)
    assert record["target dictionary"]["sha256"] == hashlib.sha256(symbols.encode()).hexdigest()
    assert len(lines) > 100  # the test permutes a real vocabulary


@pytest.mark.parametrize("key,what", [("vocab_filename", "target dictionary"),
                                      ("src_vocab_filename", "source dictionary")])
def test_agent_refuses_a_permuted_dictionary(
    trained_tiny: dict[str, Path], prepared_tiny: Path, tmp_path: Path, key: str, what: str
) -> None:
    checkpoint = trained_tiny["chunk-causal"]
    data = data_copy(prepared_tiny, tmp_path / "data")
    load_model_cached(checkpoint, data)  # an identical copy loads (and is cached)
    permute(dictionary_file(data, key))
    with pytest.raises(DataFileMismatch) as caught:
        load_model_cached(checkpoint, data)  # the same key: the cache must not hide the change
    message = str(caught.value)
    assert message.startswith(f"{checkpoint} was trained with the {what} sha256 ")
    assert f"; {dictionary_file(data, key)} has " in message and message.endswith(REFUSAL)
    assert "\n" not in message


def test_fairseq_generate_refuses_a_permuted_target_dictionary(
    trained_tiny: dict[str, Path], prepared_tiny: Path, tmp_path: Path
) -> None:
    data = data_copy(prepared_tiny, tmp_path / "data")
    permute(dictionary_file(data, "vocab_filename"))
    checkpoint = trained_tiny["chunk-causal"]
    command = [
        str(Path(sys.executable).parent / "fairseq-generate"), str(data),
        "--user-dir", str(REPO / "fairseq_mgcm"), "--config-yaml", "config.yaml",
        "--gen-subset", "tst-COMMON", "--task", "speech_to_text_multitask",
        "--path", str(checkpoint), "--beam", "1", "--batch-size", "4", "--max-len-b", "5",
        "--cpu",
    ]  # fmt: skip
    result = subprocess.run(
        command, env=single_thread_env(), capture_output=True, text=True, check=False
    )
    assert result.returncode != 0
    assert f"{checkpoint} was trained with the target dictionary sha256 " in result.stderr
    assert f"; {dictionary_file(data, 'vocab_filename')} has " in result.stderr
    assert REFUSAL in result.stderr and "D-0" not in result.stdout  # nothing decoded
    assert "Traceback" not in result.stderr  # a user error: one line (fairseq_mgcm/errors.py)


def test_sweep_refuses_a_permuted_target_dictionary_before_any_run(
    trained_tiny: dict[str, Path], prepared_tiny: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from fairseq_mgcm.agents.sweep import main

    data = data_copy(prepared_tiny, tmp_path / "data")
    permute(dictionary_file(data, "vocab_filename"))
    checkpoint = trained_tiny["chunk-causal"]
    out = tmp_path / "sweep"
    with pytest.raises(SystemExit) as caught:
        main(["--checkpoint", str(checkpoint), "--data-dir", str(data), "--k", "2",
              "--output-dir", str(out)])
    assert caught.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith(f"simuleval_sweep: {checkpoint} was trained with the target "
                          f"dictionary sha256 ") and err.endswith(REFUSAL)
    assert not out.exists()  # no run, no results


def test_a_checkpoint_without_the_record_loads_with_a_warning(
    trained_tiny: dict[str, Path], prepared_tiny: Path, tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    state = torch.load(trained_tiny["chunk-causal"], map_location="cpu")
    del state["task_state"]["data_files"]
    old = tmp_path / "old.pt"
    torch.save(state, old)
    with caplog.at_level(logging.WARNING, logger="fairseq_mgcm.checkpoints.data_files"):
        loaded = load_model(old, prepared_tiny)
    assert len(loaded.tgt_dict) > 100
    assert caplog.text.count(f"{old} records no dictionary fingerprints") == 1
