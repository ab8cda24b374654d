"""fairseq_mgcm.recipe.lineage: a stage's key follows the content of exactly what it reads, and
a training of other inputs is set aside, never resumed or deleted."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from fairseq_mgcm.recipe.lineage import KEY_FILE, LOCK_FILE, claim, data_key, key, main
from fairseq_mgcm.recipe.run_lock import hold


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """A prepared data folder's layout (scripts/prepare_mustc.py's names), small contents."""
    folder = tmp_path / "data"
    (folder / ".done").mkdir(parents=True)
    (folder / "config.yaml").write_text("vocab_filename: spm_tgt.txt\n")
    (folder / "spm_tgt.txt").write_text("▁ein 5\n▁mann 4\n")
    (folder / "gcmvn.npz").write_bytes(b"stats")
    for split in ("train", "dev", "tst-COMMON"):
        (folder / f"{split}.tsv").write_text(f"id\taudio\n{split}_1\tfbank80_{split}.zip:1:2\n")
        (folder / f"fbank80_{split}.zip").write_bytes(b"PK" + split.encode())
    wavs = folder / "simuleval" / "tst-COMMON" / "wav"
    wavs.mkdir(parents=True)
    (wavs / "a.wav").write_bytes(b"RIFF")
    (wavs.parent / "source.txt").write_text(f"{wavs / 'a.wav'}\n")
    (wavs.parent / "target.txt").write_text("ein mann\n")
    return folder


def _edit(path: Path, text: str) -> None:
    """Rewrite with the same size and mtime: only the content tells."""
    stat = path.stat()
    assert len(text.encode()) == stat.st_size
    path.write_text(text)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def test_a_training_key_follows_the_shared_files_and_its_splits_only(data: Path) -> None:
    training = data_key(data, ["train", "dev"])
    _edit(data / "tst-COMMON.tsv", (data / "tst-COMMON.tsv").read_text().upper())
    assert data_key(data, ["train", "dev"]) == training  # the test split is not read
    _edit(data / "spm_tgt.txt", "▁mann 4\n▁ein 5\n")  # the same dictionary in another order
    reordered = data_key(data, ["train", "dev"])
    assert reordered != training
    _edit(data / "dev.tsv", (data / "dev.tsv").read_text().replace("dev_1", "dev_2"))
    edited_dev = data_key(data, ["train", "dev"])
    assert edited_dev != reordered
    (data / ".done" / "anything.json").write_text("{}")  # markers and temporary files: not data
    (data / ".spm_tgt.txt.abcd1234.tmp").write_text("half")
    assert data_key(data, ["train", "dev"]) == edited_dev


def test_a_new_feature_archive_counts_by_size_and_mtime(data: Path) -> None:
    before = data_key(data, ["train"])
    archive = data / "fbank80_train.zip"
    os.utime(archive, ns=(archive.stat().st_atime_ns, archive.stat().st_mtime_ns + 10**9))
    assert data_key(data, ["train"]) != before


def test_the_sweep_key_follows_its_simuleval_inputs(data: Path) -> None:
    before = data_key(data, simuleval=["tst-COMMON"])
    assert data_key(data, ["train"]) != before
    target = data / "simuleval" / "tst-COMMON" / "target.txt"
    _edit(target, "ein baum\n")
    assert data_key(data, simuleval=["tst-COMMON"]) != before
    with pytest.raises(SystemExit, match=r"simuleval/dev: no SimulEval inputs of split 'dev'"):
        data_key(data, simuleval=["dev"])
    with pytest.raises(SystemExit, match=r"test.tsv: no manifest of split 'test'"):
        data_key(data, ["test"])


def test_an_upstream_marker_that_changes_appears_or_goes_changes_the_key(tmp_path: Path) -> None:
    marker = tmp_path / ".train.done"
    absent = key(upstream=[marker])
    marker.write_text("--max-epoch 1 | inputs 0123")
    present = key(upstream=[marker])
    marker.write_text("--max-epoch 2 | inputs 0123")
    assert len({absent, present, key(upstream=[marker])}) == 3
    assert len(present) == 16


def test_a_training_of_other_inputs_is_set_aside_whole_and_kept(tmp_path: Path) -> None:
    out = tmp_path / "mgcm"
    assert claim(out, "aaaa") is None
    assert (out / KEY_FILE).read_text() == "aaaa\n"
    (out / "checkpoints").mkdir()
    (out / "checkpoints" / "checkpoint_last.pt").write_bytes(b"model of data aaaa")
    (out / "conflict.jsonl").write_text('{"window": 1}\n')
    (out / ".train.done").write_text("flags | inputs aaaa")
    assert claim(out, "aaaa") is None  # the same inputs: resume
    assert (out / "checkpoints" / "checkpoint_last.pt").is_file()

    moved = claim(out, "bbbb")
    assert moved is not None and moved.parent == out / "stale" and moved.name.endswith("-aaaa")
    assert (moved / "checkpoints" / "checkpoint_last.pt").read_bytes() == b"model of data aaaa"
    assert (moved / "conflict.jsonl").read_text() == '{"window": 1}\n'
    assert (moved / ".train.done").read_text() == "flags | inputs aaaa"
    assert not (out / "checkpoints").exists() and not (out / ".train.done").exists()
    assert (out / KEY_FILE).read_text() == "bbbb\n"


def test_claim_on_the_command_line_prints_the_key_and_says_what_it_set_aside(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    args = ["claim", str(out), "--data", str(data), "--splits", "train", "dev"]
    assert main(args) == 0
    first = capsys.readouterr()
    assert first.out.strip() == key(data, ["train", "dev"]) and first.err == ""
    (out / "checkpoints").mkdir()
    _edit(data / "spm_tgt.txt", "▁mann 4\n▁ein 5\n")
    assert main(args) == 0
    second = capsys.readouterr()
    assert second.out.strip() != first.out.strip()
    assert "the data or the model it starts from changed since it was trained" in second.err
    assert "training starts afresh" in second.err


def test_claim_refuses_while_a_training_holds_the_folder(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["claim", str(out), "--data", str(data), "--splits", "train"]
    assert main(args) == 0
    (out / "checkpoints").mkdir()
    _edit(data / "spm_tgt.txt", "▁mann 4\n▁ein 5\n")
    with hold(out / LOCK_FILE, ["fairseq-train", "a running training"]):
        with pytest.raises(SystemExit, match=r"is being written by another training: .*"
                                             r"a running training"):
            main(args)
    assert (out / "checkpoints").is_dir() and not (out / "stale").exists()
