"""The criterion's per-task losses: values, weights, one forward pass, metrics."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from fairseq.data import data_utils
from fairseq.logging import metrics

from fairseq_mgcm.criterions import StCtcAsrConfig, StCtcAsrCriterion
from tests.models._tiny import stub_task, tiny_model


def _criterion(task, **options) -> StCtcAsrCriterion:
    cfg = StCtcAsrConfig(**{"sentence_avg": False, **options})
    return StCtcAsrCriterion(cfg, task)


def _sample(task, batch: int = 3) -> dict:
    tgt, src = task.target_dictionary, task.transcript_dictionary
    targets = [torch.randint(4, len(tgt), (n,)).tolist() + [tgt.eos()] for n in (5, 3, 7)[:batch]]
    transcripts = [torch.randint(4, len(src), (n,)).tolist() + [src.eos()] for n in (4, 6, 2)][
        :batch
    ]
    targets = [torch.tensor(t) for t in targets]
    transcripts = [torch.tensor(t) for t in transcripts]
    lengths = torch.tensor([96, 80, 64][:batch])
    feats = torch.randn(batch, 96, 80, dtype=torch.float64)
    return {
        "net_input": {
            "src_tokens": feats,
            "src_lengths": lengths,
            "prev_output_tokens": data_utils.collate_tokens(
                targets, tgt.pad(), tgt.eos(), move_eos_to_beginning=True
            ),
            "prev_transcript_tokens": data_utils.collate_tokens(
                transcripts, src.pad(), src.eos(), move_eos_to_beginning=True
            ),
        },
        "target": data_utils.collate_tokens(targets, tgt.pad(), tgt.eos()),
        "transcript": data_utils.collate_tokens(transcripts, src.pad(), src.eos()),
        "transcript_lengths": torch.tensor([len(t) for t in transcripts]),
        "transcript_ntokens": sum(len(t) for t in transcripts),
        "ntokens": sum(len(t) for t in targets),
    }


@pytest.fixture
def setup():
    task = stub_task()
    model = tiny_model(waitk_lagging=2)
    return task, model, _sample(task)


def test_losses_match_their_definitions(setup) -> None:
    task, model, sample = setup
    criterion = _criterion(task, label_smoothing=0.0, ctc_weight=0.5, asr_weight=0.25)
    losses, sample_size, log = criterion.compute_task_losses(model, sample)
    assert set(losses) == {"st", "ctc", "asr"}
    assert sample_size == sample["ntokens"]

    logits, extra = model(**sample["net_input"])
    st = F.cross_entropy(logits.transpose(1, 2), sample["target"], ignore_index=1, reduction="sum")
    asr_logits = extra["asr_out"][0]
    asr = F.cross_entropy(
        asr_logits.transpose(1, 2), sample["transcript"], ignore_index=1, reduction="sum"
    )
    blank = task.transcript_dictionary.bos()
    ctc = sum(
        F.ctc_loss(
            extra["ctc_logits"][: extra["encoder_lengths"][b], b : b + 1].log_softmax(-1),
            sample["transcript"][b : b + 1, : sample["transcript_lengths"][b] - 1],
            extra["encoder_lengths"][b : b + 1],
            sample["transcript_lengths"][b : b + 1] - 1,
            blank=blank,
            reduction="sum",
        )
        for b in range(3)
    )
    torch.testing.assert_close(losses["st"], st)
    torch.testing.assert_close(losses["asr"], 0.25 * asr)
    torch.testing.assert_close(losses["ctc"], 0.5 * ctc)
    torch.testing.assert_close(log["ctc_loss"], ctc)  # logged unweighted

    total, _, _ = criterion(model, sample)
    torch.testing.assert_close(total, losses["st"] + losses["ctc"] + losses["asr"])


def test_label_smoothing_changes_the_loss_but_not_the_nll(setup) -> None:
    task, model, sample = setup
    plain = _criterion(task, label_smoothing=0.0).compute_task_losses(model, sample)
    smooth = _criterion(task, label_smoothing=0.1).compute_task_losses(model, sample)
    torch.testing.assert_close(plain[2]["st_nll_loss"], smooth[2]["st_nll_loss"])
    assert not torch.allclose(plain[0]["st"], smooth[0]["st"])


def test_one_forward_pass_and_separate_graphs(setup) -> None:
    task, model, sample = setup
    calls = []
    model.register_forward_hook(lambda *args: calls.append(1))
    losses, _, _ = _criterion(task).compute_task_losses(model, sample)
    assert len(calls) == 1
    # the ST loss does not reach the ASR decoder or the CTC head; each aux loss reaches its own
    st_grads = torch.autograd.grad(
        losses["st"],
        [model.asr_decoder.layers[0].ffn.fc1.weight, model.ctc_proj.weight],
        allow_unused=True,
        retain_graph=True,
    )
    assert all(g is None for g in st_grads)
    (ctc_grad,) = torch.autograd.grad(losses["ctc"], [model.ctc_proj.weight], retain_graph=True)
    assert ctc_grad.abs().sum() > 0


def test_zero_weight_tasks_are_left_out(setup) -> None:
    task, model, sample = setup
    calls = []
    model.asr_decoder.register_forward_hook(lambda *args: calls.append(1))
    losses, _, log = _criterion(task, ctc_weight=0.0, asr_weight=0.0).compute_task_losses(
        model, sample
    )
    assert set(losses) == {"st"} and "ctc_loss" not in log and "asr_loss" not in log
    assert calls == []  # the ASR decoder is not even run


def test_too_short_audio_gives_zero_ctc_not_inf(setup) -> None:
    task, model, sample = setup
    sample["net_input"]["src_lengths"] = torch.tensor([96, 80, 4])  # 1 encoder frame, 1+ tokens
    losses, _, _ = _criterion(task).compute_task_losses(model, sample)
    assert torch.isfinite(losses["ctc"])


def test_negative_weight_names_its_flag() -> None:
    with pytest.raises(ValueError, match="--ctc-weight"):
        _criterion(stub_task(), ctc_weight=-1.0)


def test_reduce_metrics_logs_each_task(setup) -> None:
    task, model, sample = setup
    _, _, log = _criterion(task).compute_task_losses(model, sample)
    with metrics.aggregate() as agg:
        StCtcAsrCriterion.reduce_metrics([log, log])
    values = agg.get_smoothed_values()
    for key in ("loss", "nll_loss", "st_loss", "st_nll_loss", "ctc_loss", "asr_loss", "ppl"):
        assert key in values
    expected = 2 * float(log["st_loss"]) / (2 * sample["ntokens"]) / math.log(2)
    assert values["st_loss"] == pytest.approx(expected, abs=1e-3)
    expected_ctc = float(log["ctc_loss"]) / sample["transcript_ntokens"] / math.log(2)
    assert values["ctc_loss"] == pytest.approx(expected_ctc, abs=1e-3)
    assert StCtcAsrCriterion.logging_outputs_can_be_summed()


def test_sentence_avg_uses_sentences(setup) -> None:
    task, model, sample = setup
    _, sample_size, _ = _criterion(task, sentence_avg=True).compute_task_losses(model, sample)
    assert sample_size == 3


def test_criterion_needs_task_transcripts() -> None:
    with pytest.raises(ValueError, match="speech_to_text_multitask"):
        _criterion(SimpleNamespace(target_dictionary=stub_task().target_dictionary))
