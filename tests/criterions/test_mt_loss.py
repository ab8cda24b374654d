"""The MT auxiliary loss: its value, its weight, its own entry, and the start-up checks."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from fairseq.logging import metrics

from fairseq_mgcm.criterions import StCtcAsrCriterion
from fairseq_mgcm.criterions.mt_checks import check_mt_lagging
from tests.criterions.test_st_ctc_asr import _criterion, _sample
from tests.models._tiny import stub_task, tiny_model


@pytest.fixture
def setup():
    task = stub_task()
    model = tiny_model(waitk_lagging=2, mt_text_encoder=True, mt_waitk_lagging=2)
    return task, model, _sample(task)


def test_mt_loss_is_the_st_decoder_translating_the_transcript(setup) -> None:
    task, model, sample = setup
    criterion = _criterion(task, label_smoothing=0.0, mt_weight=0.4)
    losses, _, log = criterion.compute_task_losses(model, sample)
    assert set(losses) == {"st", "ctc", "asr", "mt"}

    logits, _ = model.forward_mt(
        sample["transcript"], sample["transcript_lengths"],
        sample["net_input"]["prev_output_tokens"],
    )  # fmt: skip
    mt = F.cross_entropy(logits.transpose(1, 2), sample["target"], ignore_index=1, reduction="sum")
    torch.testing.assert_close(losses["mt"], 0.4 * mt)
    torch.testing.assert_close(log["mt_loss"], mt)  # logged unweighted
    total, _, _ = criterion(model, sample)
    torch.testing.assert_close(total, sum(losses.values()))


def test_mt_is_left_out_at_weight_zero_and_never_run(setup) -> None:
    task, model, sample = setup
    calls = []
    model.mt_embed.register_forward_hook(lambda *args: calls.append(1))
    losses, _, log = _criterion(task).compute_task_losses(model, sample)
    assert "mt" not in losses and "mt_loss" not in log and calls == []


def test_mt_gradient_reaches_shared_encoder_but_not_subsampler(setup) -> None:
    task, model, sample = setup
    losses, _, _ = _criterion(task, mt_weight=1.0).compute_task_losses(model, sample)
    sub, layer = (
        model.encoder.subsample.conv_layers[0].weight,
        model.encoder.layers[0].ffn.fc1.weight,
    )
    # the subsampler's gradient comes from ST/CTC/ASR only: MT adds nothing to it
    others = sum(losses[t] for t in ("st", "ctc", "asr"))
    (g_others,) = torch.autograd.grad(others, [sub], retain_graph=True)
    (g_all,) = torch.autograd.grad(others + losses["mt"], [sub], retain_graph=True)
    torch.testing.assert_close(g_all, g_others)
    (g_mt,) = torch.autograd.grad(losses["mt"], [layer])
    assert g_mt.abs().sum() > 0


def test_mt_metrics_are_per_target_token(setup) -> None:
    task, model, sample = setup
    _, _, log = _criterion(task, mt_weight=0.3).compute_task_losses(model, sample)
    with metrics.aggregate() as agg:
        StCtcAsrCriterion.reduce_metrics([log])
    expected = float(log["mt_loss"]) / sample["ntokens"] / math.log(2)
    assert agg.get_smoothed_values()["mt_loss"] == pytest.approx(expected, abs=1e-3)


def test_mt_weight_needs_transcripts_and_names_the_flag() -> None:
    no_transcripts = SimpleNamespace(target_dictionary=stub_task().target_dictionary)
    with pytest.raises(ValueError, match="--mt-weight"):
        _criterion(no_transcripts, mt_weight=0.3)


def test_batch_without_transcript_names_the_flag(setup) -> None:
    task, model, sample = setup
    del sample["transcript"]
    with pytest.raises(ValueError, match="--mt-weight"):
        _criterion(task, mt_weight=0.3, ctc_weight=0.0, asr_weight=0.0).compute_task_losses(
            model, sample
        )


def test_mt_weight_on_a_model_without_mt_front_end_fails_at_start_up() -> None:
    criterion = _criterion(stub_task(), mt_weight=0.3)
    with pytest.raises(ValueError, match="--mt-text-encoder"):
        criterion.check_model_config(SimpleNamespace(mt_text_encoder=False))
    criterion.check_model_config(SimpleNamespace(mt_text_encoder=True))


class _Split:
    """The two things the check reads from a loaded split: raw texts and their tokens."""

    def __init__(self, texts: list[str]) -> None:
        self.src_texts = texts
        self.tokenized: list[int] = []

    def get_transcript(self, i: int) -> torch.Tensor:
        self.tokenized.append(i)
        return torch.zeros(len(self.src_texts[i].replace(" ", "")) + 1)  # one token a letter


def test_mt_lagging_not_below_every_transcript_length_is_refused() -> None:
    split = _Split(["ab c", "abcdef", "a"])  # longest: 6 letters + EOS = 7 tokens
    cfg = SimpleNamespace(mt_waitk_lagging=7, waitk_lagging=3)
    with pytest.raises(ValueError, match=r"--mt-waitk-lagging 7 .*\(7 tokens"):
        check_mt_lagging("train", split, cfg)
    check_mt_lagging("train", split, SimpleNamespace(mt_waitk_lagging=6, waitk_lagging=3))
    with pytest.raises(ValueError, match="--waitk-lagging 9"):
        check_mt_lagging("train", split, SimpleNamespace(mt_waitk_lagging=None, waitk_lagging=9))


def test_mt_lagging_check_tokenizes_only_what_could_be_longest() -> None:
    split = _Split(["a b c d e", "a", "b"])  # 5 words: at least 6 tokens > k, no tokenizing
    check_mt_lagging("train", split, SimpleNamespace(mt_waitk_lagging=3, waitk_lagging=3))
    assert split.tokenized == []
    split = _Split(["abcdefgh", "ab", "a"])  # "ab" (at most 4 tokens) cannot beat 9
    with pytest.raises(ValueError, match=r"\(9 tokens"):
        check_mt_lagging("train", split, SimpleNamespace(mt_waitk_lagging=20, waitk_lagging=3))
    assert split.tokenized == [0]


def test_conflict_engine_projects_mt_on_encoder_layers_and_st_decoder(setup) -> None:
    """MT is one more auxiliary for the engine: its (st, mt) pairs cover the shared encoder
    layers and the ST decoder, never the subsampler it skips."""
    from fairseq_mgcm.conflict import ConflictEngine

    task, model, sample = setup
    losses, _, _ = _criterion(task, mt_weight=0.3).compute_task_losses(model, sample)
    engine = ConflictEngine(model, method="mgcm", granularity="module", aux_mode="separate")
    stats = engine.backward(losses, primary="st")
    mt_modules = {r.module for r in stats.records if r.tasks == ("st", "mt")}
    assert any(m.startswith("decoder.layers.0.") for m in mt_modules)
    assert any(m.startswith("encoder.layers.0.") for m in mt_modules)
    assert "encoder.subsample" not in mt_modules
