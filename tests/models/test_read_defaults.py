"""Defaults that keep training consistent with inference: one pre-decision ratio per
architecture, a chunk-causal encoder under wait-k unless asked otherwise (and then a warning),
and a full-context path in multipath training so that offline decoding matches a trained path."""

from __future__ import annotations

import argparse
import logging

import pytest
import torch

from fairseq_mgcm.models.waitk_s2t_transformer import (
    WaitkS2TTransformerModel,
    waitk_s2t_transformer_s,
)
from tests.models._tiny import stub_task, tiny_model


def test_each_architecture_sets_the_pre_decision_ratio_once() -> None:
    assert tiny_model(waitk_lagging=3).pre_decision_ratio == 4
    cfg = argparse.Namespace(waitk_lagging=3)
    waitk_s2t_transformer_s(cfg)
    assert cfg.pre_decision_ratio == 7
    assert tiny_model(waitk_lagging=3, pre_decision_ratio=6).pre_decision_ratio == 6


def test_bare_arch_takes_the_s_ratio() -> None:
    cfg = argparse.Namespace(waitk_lagging=3)
    waitk_s2t_transformer_s(cfg)
    cfg.pre_decision_ratio = None  # what --arch waitk_s2t_transformer leaves unset
    cfg.encoder_layers, cfg.decoder_layers, cfg.asr_decoder_layers = 1, 1, 0
    model = WaitkS2TTransformerModel.build_model(cfg, stub_task())
    assert model.pre_decision_ratio == 7 and model.encoder.chunk_size == 7


def test_wait_k_defaults_to_a_chunk_causal_encoder_of_one_read_step() -> None:
    model = tiny_model(waitk_lagging=3, pre_decision_ratio=5)
    assert model.encoder.is_chunk_causal and model.encoder.chunk_size == 5
    assert not tiny_model().encoder.is_chunk_causal  # offline: bidirectional


def test_explicit_bidirectional_wait_k_encoder_warns(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        model = tiny_model(waitk_lagging=3, encoder_chunk_size=0)
    assert not model.encoder.is_chunk_causal
    assert any("--encoder-chunk-size 0" in r.getMessage() and "future audio" in r.getMessage()
               for r in caplog.records)  # fmt: skip
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        tiny_model(encoder_chunk_size=0)  # offline model: nothing to warn about
        tiny_model(waitk_lagging=3)
    assert not caplog.records


def _draws(model, n: int = 200) -> list[int | None]:
    prev = torch.randint(4, 30, (1, 3))
    out = {"encoder_out": [torch.randn(30, 1, 128, dtype=torch.float64)],
           "encoder_padding_mask": []}  # fmt: skip
    model.train()
    return [model.decoder(prev, out)[1]["waitk_lagging"] for _ in range(n)]


def test_multipath_includes_the_full_context_path_by_default() -> None:
    draws = _draws(tiny_model(waitk_lagging=4, waitk_multipath=True), n=400)
    assert set(draws) == {None, 1, 2, 3, 4}
    # k uniform over {1..4, infinity}: 80 expected full-context draws of 400 (sd about 8)
    assert 40 < draws.count(None) < 120


def test_full_context_probability_is_honoured() -> None:
    assert set(_draws(tiny_model(waitk_lagging=4, waitk_multipath=True,
                                 waitk_full_context_prob=1.0))) == {None}  # fmt: skip
    assert None not in _draws(
        tiny_model(waitk_lagging=4, waitk_multipath=True, waitk_full_context_prob=0.0)
    )
    assert set(_draws(tiny_model(waitk_lagging=4))) == {4}  # single path: always k


def test_full_context_path_is_the_offline_decoder() -> None:
    """The path reads every frame: the same logits as an offline model with the same weights."""
    options = {"dropout": 0.0}
    full = tiny_model(
        waitk_lagging=2, waitk_multipath=True, waitk_full_context_prob=1.0, **options
    ).train()
    offline = tiny_model(**options).eval()
    offline.load_state_dict(full.state_dict())
    prev = torch.randint(4, 30, (1, 6))
    out = {"encoder_out": [torch.randn(30, 1, 128, dtype=torch.float64)],
           "encoder_padding_mask": []}  # fmt: skip
    torch.testing.assert_close(full.decoder(prev, out)[0], offline.decoder(prev, out)[0])
