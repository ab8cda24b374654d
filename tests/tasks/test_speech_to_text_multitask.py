"""The task on the data helper's prepared corpus: dictionaries, transcript batches, validation
BLEU. (The conflict options are the optimizer wrapper's: tests/optim/test_optimizer.py.)"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from fairseq.logging import metrics

from fairseq_mgcm.criterions import StCtcAsrConfig, StCtcAsrCriterion
from fairseq_mgcm.tasks import SpeechToTextMultitaskConfig, SpeechToTextMultitaskTask


def _task(data: Path, **options_) -> SpeechToTextMultitaskTask:
    cfg = SpeechToTextMultitaskConfig(data=str(data), **options_)
    return SpeechToTextMultitaskTask.setup_task(cfg)


def test_batches_carry_aligned_targets_and_transcripts(prepared_tiny: Path) -> None:
    task = _task(prepared_tiny)
    assert len(task.transcript_dictionary) > 4 and len(task.target_dictionary) > 4
    assert task.source_dictionary is None  # fairseq-generate must not print audio as tokens
    task.load_dataset("dev")
    dataset = task.dataset("dev")
    batch = dataset.collater([dataset[i] for i in range(5)])
    assert set(batch["net_input"]) == {
        "src_tokens",
        "src_lengths",
        "prev_output_tokens",
        "prev_transcript_tokens",
    }
    src_bpe = task.build_src_bpe()
    tgt_bpe = task.build_bpe(None)
    src_dict, tgt_dict = task.transcript_dictionary, task.target_dictionary
    for row, index in enumerate(batch["id"].tolist()):
        n = int(batch["transcript_lengths"][row])
        transcript = batch["transcript"][row]
        assert transcript[n - 1] == src_dict.eos() and (transcript[n:] == src_dict.pad()).all()
        assert src_bpe.decode(src_dict.string(transcript[: n - 1])) == dataset.src_texts[index]
        target = batch["target"][row]
        target = target[target != tgt_dict.pad()]
        assert tgt_bpe.decode(tgt_dict.string(target)) == dataset.tgt_texts[index]
        prev = batch["net_input"]["prev_transcript_tokens"][row]
        assert prev[0] == src_dict.eos() and torch.equal(prev[1:n], transcript[: n - 1])
    assert batch["transcript_ntokens"] == int(batch["transcript_lengths"].sum())


def test_missing_source_dictionary_is_named(prepared_tiny: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(prepared_tiny, data, symlinks=True)
    config = yaml.safe_load((data / "config.yaml").read_text())
    del config["src_vocab_filename"]
    (data / "config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(ValueError, match=r"config\.yaml: missing key 'src_vocab_filename'"):
        _task(data)
    config["src_vocab_filename"] = "nowhere.txt"
    (data / "config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(FileNotFoundError, match="nowhere.txt"):
        _task(data)


def test_validation_reports_bleu(prepared_tiny: Path) -> None:
    task = _task(prepared_tiny, eval_bleu=True)
    model = task.build_model(argparse.Namespace(arch="waitk_s2t_transformer_tiny"))
    criterion = StCtcAsrCriterion(StCtcAsrConfig(sentence_avg=False), task)
    task.load_dataset("dev")
    dataset = task.dataset("dev")
    sample = dataset.collater([dataset[i] for i in range(4)])
    _, _, log = task.valid_step(sample, model, criterion)
    assert log["_bleu_totals_0"] > 0 and log["_bleu_ref_len"] > 0
    with metrics.aggregate() as agg:
        task.reduce_metrics([log], criterion)
    values = agg.get_smoothed_values()
    assert 0.0 <= values["bleu"] <= 100.0 and "st_loss" in values


def test_batching_keeps_every_utterance(prepared_tiny: Path) -> None:
    """fairseq drops a last batch whose size is not a multiple of 8; the task must not."""
    task = _task(prepared_tiny)
    task.load_dataset("tst-COMMON")
    dataset = task.dataset("tst-COMMON")
    iterator = task.get_batch_iterator(
        dataset, max_tokens=100_000, max_positions=task.max_positions(),
        required_batch_size_multiple=8,
    ).next_epoch_itr(shuffle=False)  # fmt: skip
    ids = sorted(i for batch in iterator for i in batch["id"].tolist())
    assert ids == list(range(len(dataset)))
