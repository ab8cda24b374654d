"""The automatic partition: kinds recognised on torch, fairseq and our own modules."""
from __future__ import annotations

import argparse
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from fairseq_mgcm.conflict import ConflictEngine, describe, partition


def _kinds(model: nn.Module, granularity: str = "module") -> dict[str, str]:
    return {g.name: g.kind for g in partition(model, granularity)}


def _check_cover(model: nn.Module, granularity: str) -> None:
    """Every trainable parameter in exactly one group."""
    seen = [id(p) for g in partition(model, granularity) for _, p in g.params]
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert len(seen) == len(set(seen)) and set(seen) == trainable


def _fairseq_layers() -> tuple[nn.Module, nn.Module]:
    from fairseq.models.transformer import TransformerConfig
    from fairseq.modules.transformer_layer import (
        TransformerDecoderLayerBase,
        TransformerEncoderLayerBase,
    )

    cfg = TransformerConfig()
    for side in (cfg.encoder, cfg.decoder):
        side.embed_dim, side.ffn_embed_dim, side.attention_heads = 8, 16, 2
    return TransformerEncoderLayerBase(cfg), TransformerDecoderLayerBase(cfg)


def test_fairseq_transformer_layers() -> None:
    encoder_layer, decoder_layer = _fairseq_layers()
    assert _kinds(encoder_layer) == {
        "self_attn": "attention", "self_attn_layer_norm": "layernorm",
        "{fc1,fc2}": "ffn", "final_layer_norm": "layernorm",
    }
    assert _kinds(decoder_layer)["encoder_attn"] == "attention"
    assert _kinds(decoder_layer)["{fc1,fc2}"] == "ffn"


def test_fairseq_subsampler_and_torch_transformer() -> None:
    from fairseq.models.speech_to_text.modules.convolution import Conv1dSubsampler

    class Encoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.subsample = Conv1dSubsampler(8, 16, 8)
            self.transformer = nn.TransformerEncoder(
                nn.TransformerEncoderLayer(8, 2, 16), num_layers=2, enable_nested_tensor=False)
            self.ctc_proj = nn.Linear(8, 5)
            self.scale = nn.Parameter(torch.ones(1))

    kinds = _kinds(Encoder())
    assert kinds == {
        "subsample": "subsampler",
        "transformer.layers.0.self_attn": "attention",
        "transformer.layers.0.{linear1,linear2}": "ffn",
        "transformer.layers.0.norm1": "layernorm",
        "transformer.layers.0.norm2": "layernorm",
        "transformer.layers.1.self_attn": "attention",
        "transformer.layers.1.{linear1,linear2}": "ffn",
        "transformer.layers.1.norm1": "layernorm",
        "transformer.layers.1.norm2": "layernorm",
        "ctc_proj": "head",
        "<root>": "other",
    }


def _waitk_model(untie: bool) -> nn.Module:
    from fairseq.data import Dictionary

    from fairseq_mgcm.models import WaitkS2TTransformerModel
    from fairseq_mgcm.models.waitk_s2t_transformer import waitk_s2t_transformer_tiny

    def dictionary(n: int) -> Dictionary:
        d = Dictionary()
        for i in range(n):
            d.add_symbol(f"w{i}")
        return d

    task = SimpleNamespace(transcript_dictionary=dictionary(10), target_dictionary=dictionary(12),
                           max_positions=lambda: (6000, 1024),
                           data_cfg=SimpleNamespace(input_feat_per_channel=80))
    cfg = argparse.Namespace(untie_decoder_embeddings=untie)
    waitk_s2t_transformer_tiny(cfg)
    return WaitkS2TTransformerModel.build_model(cfg, task)


@pytest.mark.parametrize("untie", [False, True])
def test_our_waitk_model(untie: bool) -> None:
    model = _waitk_model(untie)
    kinds = _kinds(model)
    assert kinds["encoder.subsample"] == "subsampler"
    assert kinds["encoder.layers.0.self_attn"] == "attention"
    assert kinds["encoder.layers.0.ffn"] == "ffn"
    assert kinds["decoder.layers.0.encoder_attn"] == "attention"
    assert kinds["decoder.embed_tokens"] == "embedding"
    assert kinds["ctc_proj"] == "head"
    assert ("decoder.output_projection" in kinds) == untie  # tied: it belongs to the embedding
    if untie:
        assert kinds["decoder.output_projection"] == "head"
    for granularity in ("parameter", "module", "layer", "model"):
        _check_cover(model, granularity)


def test_tied_parameters_belong_to_the_first_group() -> None:
    class Tied(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed_tokens = nn.Embedding(5, 4)
            self.output_projection = nn.Linear(4, 5, bias=False)
            self.output_projection.weight = self.embed_tokens.weight

    assert _kinds(Tied()) == {"embed_tokens": "embedding"}


def test_frozen_parameters_are_left_out() -> None:
    model = nn.Sequential(nn.Linear(2, 2), nn.LayerNorm(2))
    model[0].weight.requires_grad_(False)
    [(name, _)] = [(n, p) for g in partition(model) for n, p in g.params if n.startswith("0.")]
    assert name == "0.bias"


def test_granularities() -> None:
    encoder_layer, _ = _fairseq_layers()
    stack = nn.Module()
    stack.layers = nn.ModuleList([encoder_layer, _fairseq_layers()[0]])
    stack.layer_norm = nn.LayerNorm(8)
    assert _kinds(stack, "layer") == {"layers.0": "layer", "layers.1": "layer",
                                      "layer_norm": "layernorm"}
    params = partition(stack, "parameter")
    assert len(params) == len(list(stack.parameters()))
    assert dict((g.name, g.kind) for g in params)["layers.0.fc1.weight"] == "ffn"
    [whole] = partition(stack, "model")
    assert whole.numel == sum(p.numel() for p in stack.parameters())
    for granularity in ("parameter", "module", "layer", "model"):
        _check_cover(stack, granularity)


def test_describe_lists_groups_and_totals() -> None:
    encoder_layer, _ = _fairseq_layers()
    text = ConflictEngine(encoder_layer).describe_partition()
    assert "self_attn" in text and "attention: 1 groups" in text and "layernorm: 2 groups" in text
    assert describe(()).startswith("group")


def test_parameters_unfrozen_after_the_first_step_are_projected_from_then_on() -> None:
    """The partition follows ``requires_grad``: a layer unfrozen later joins it, and MGCM
    projects its auxiliary gradient (here exactly opposite the primary one: it cancels)."""
    model = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 1))
    model[0].requires_grad_(False)
    engine = ConflictEngine(model, method="mgcm", granularity="module")
    x = torch.randn(4, 3)
    engine.backward({"st": model(x).sum(), "ctc": -model(x).sum()}, primary="st")
    assert {n for g in engine.groups for n, _ in g.params} == {"1.weight", "1.bias"}

    model[0].requires_grad_(True)
    model.zero_grad(set_to_none=True)
    primary = torch.autograd.grad(model(x).sum(), model[0].weight)[0]
    engine.backward({"st": model(x).sum(), "ctc": -model(x).sum()}, primary="st")
    assert {"0.weight", "0.bias"} <= {n for g in engine.groups for n, _ in g.params}
    # projected: the conflicting -p_m leaves nothing, so the update is the primary gradient
    torch.testing.assert_close(model[0].weight.grad, primary)
