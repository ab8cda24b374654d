"""Builds tiny models without data on disk: a stub task with dictionaries and feature size."""

from __future__ import annotations

import argparse
from types import SimpleNamespace

import torch
from fairseq.data import Dictionary

from fairseq_mgcm.models import WaitkS2TTransformerModel
from fairseq_mgcm.models.waitk_s2t_transformer import waitk_s2t_transformer_tiny


def make_dictionary(n_symbols: int, prefix: str) -> Dictionary:
    dictionary = Dictionary()
    for i in range(n_symbols):
        dictionary.add_symbol(f"{prefix}{i}")
    return dictionary


def stub_task(n_src: int = 20, n_tgt: int = 30) -> SimpleNamespace:
    return SimpleNamespace(
        transcript_dictionary=make_dictionary(n_src, "en"),
        target_dictionary=make_dictionary(n_tgt, "de"),
        max_positions=lambda: (6000, 1024),
        data_cfg=SimpleNamespace(input_feat_per_channel=80),
    )


def tiny_model(seed: int = 0, **options) -> WaitkS2TTransformerModel:
    """The ``waitk_s2t_transformer_tiny`` architecture with ``options`` overriding it, in eval
    mode (no dropout), float64 so that equality checks can be tight."""
    torch.manual_seed(seed)
    cfg = argparse.Namespace(**options)
    waitk_s2t_transformer_tiny(cfg)
    model = WaitkS2TTransformerModel.build_model(cfg, stub_task())
    return model.double().eval()
