"""The data a checkpoint was trained on, as recorded in it (``checkpoints/data_files.py``):
fingerprints, the one-line refusal, and averaging that refuses a mix (issue 20, item 3).
The loaders on a trained checkpoint: tests/agents/test_data_fingerprints.py."""
from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import pytest
import torch

from fairseq_mgcm.checkpoints.data_files import (
    DataFileMismatch,
    check_data_files,
    data_files_record,
)
from fairseq_mgcm.recipe.averaging import average_checkpoints

CONFIG = {
    "vocab_filename": "spm_tgt.txt",
    "bpe_tokenizer": {"bpe": "sentencepiece", "sentencepiece_model": "spm_tgt.model"},
    "src_vocab_filename": "spm_src.txt",
}


def data_folder(root: Path, tgt_lines: list[str]) -> Path:
    root.mkdir()
    (root / "spm_tgt.txt").write_text("".join(line + "\n" for line in tgt_lines))
    (root / "spm_tgt.model").write_bytes(b"\x00spm model bytes")
    (root / "spm_src.txt").write_text("▁the 5\n▁a 3\n")
    return root


def test_a_dictionary_is_fingerprinted_by_its_symbols_in_order(tmp_path: Path) -> None:
    record = data_files_record(CONFIG, data_folder(tmp_path / "a", ["▁das 9", "▁Haus 4"]))
    assert sorted(record) == ["source dictionary", "target SentencePiece model",
                              "target dictionary"]
    assert record["target dictionary"] == {
        "path": str(tmp_path / "a" / "spm_tgt.txt"),
        "sha256": hashlib.sha256("▁das\n▁Haus".encode()).hexdigest(),
    }
    assert record["target SentencePiece model"]["sha256"] == hashlib.sha256(
        b"\x00spm model bytes").hexdigest()
    counts = data_files_record(CONFIG, data_folder(tmp_path / "b", ["▁das 1", "▁Haus 7"]))
    assert counts["target dictionary"]["sha256"] == record["target dictionary"]["sha256"]
    swapped = data_files_record(CONFIG, data_folder(tmp_path / "c", ["▁Haus 4", "▁das 9"]))
    assert swapped["target dictionary"]["sha256"] != record["target dictionary"]["sha256"]


def test_another_order_is_refused_in_one_line_naming_checkpoint_and_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    trained = data_files_record(CONFIG, data_folder(tmp_path / "a", ["▁das 9", "▁Haus 4"]))
    swapped = data_files_record(CONFIG, data_folder(tmp_path / "b", ["▁Haus 4", "▁das 9"]))
    check_data_files({"data_files": trained}, trained, "ckpt.pt")  # the same: no error
    with pytest.raises(DataFileMismatch) as caught:
        check_data_files({"data_files": trained}, swapped, "ckpt.pt")
    sha = trained["target dictionary"]["sha256"][:12]
    now = swapped["target dictionary"]["sha256"][:12]
    assert str(caught.value) == (
        f"ckpt.pt was trained with the target dictionary sha256 {sha}…; "
        f"{tmp_path / 'b' / 'spm_tgt.txt'} has {now}… (another dictionary): "
        f"use the data folder it was trained on"
    )
    with caplog.at_level(logging.WARNING, logger="fairseq_mgcm.checkpoints.data_files"):
        check_data_files({}, swapped, str(tmp_path / "old.pt"))  # no record: a warning only
    assert f"{tmp_path / 'old.pt'} records no dictionary fingerprints" in caplog.text


# ----------------------------------------------------------------------- averaging


def save(path: Path, task_state: dict | None, value: float) -> Path:
    state = {"model": {"w": torch.full((2,), value)}}
    if task_state is not None:
        state["task_state"] = task_state
    torch.save(state, path)
    return path


def trained_on(tgt_sha: str, cmvn_sha: str = "c" * 64) -> dict:
    return {"train_cmvn": {"stats_npz_path": "/d/gcmvn.npz", "sha256": cmvn_sha},
            "data_files": {"target dictionary": {"path": "/d/spm_tgt.txt", "sha256": tgt_sha}}}


def test_averaging_refuses_checkpoints_trained_on_other_data(tmp_path: Path) -> None:
    first = save(tmp_path / "checkpoint1.pt", trained_on("a" * 64), 1.0)
    same = save(tmp_path / "checkpoint2.pt", trained_on("a" * 64), 3.0)
    out = average_checkpoints([first, same], tmp_path / "avg.pt")
    assert torch.load(out)["model"]["w"].tolist() == [2.0, 2.0]  # the same data: averaged

    cases = {
        "another target dictionary": trained_on("b" * 64),
        "another global CMVN statistics": trained_on("a" * 64, cmvn_sha="d" * 64),
        "dictionary fingerprints recorded in one but not the other": None,
    }
    for reason, task_state in cases.items():
        other = save(tmp_path / "checkpoint3.pt", task_state, 5.0)
        with pytest.raises(ValueError) as caught:
            average_checkpoints([first, other], tmp_path / "mixed.pt")
        assert str(caught.value).startswith(
            f"{other} was trained on other data than {first} ({reason}"), reason
        assert not (tmp_path / "mixed.pt").exists()
