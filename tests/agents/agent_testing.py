"""Tiny random-weight models and an in-process SimulEval loop for fast agent tests.

The end-to-end tests (marked slow) train a real tiny checkpoint and run the ``simuleval`` CLI;
these fixtures let the streaming pieces and the policy be tested in seconds without training.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from fairseq.data import Dictionary
from simuleval.data.segments import EmptySegment, SpeechSegment

from fairseq_mgcm.agents.checkpoint import LoadedModel
from fairseq_mgcm.models import WaitkS2TEncoder, WaitkS2TTransformerModel, WaitkTransformerDecoder

PIECES = ["▁das", "▁Haus", "▁ist", "▁gr", "oß", "▁und", "▁alt", ".", ",", "▁k", "lein", "er"]


def make_dictionary() -> Dictionary:
    dictionary = Dictionary()
    for piece in PIECES:
        dictionary.add_symbol(piece)
    return dictionary


def make_model(chunk_size: int, waitk: int = 3, ratio: int = 2, seed: int = 0):
    """A 2-layer encoder / 2-layer decoder model with random weights (eval mode)."""
    torch.manual_seed(seed)
    dictionary = make_dictionary()
    encoder = WaitkS2TEncoder(
        input_feat_per_channel=80, embed_dim=64, layers=2, attention_heads=4, ffn_embed_dim=128,
        conv_channels=64, conv_kernel_sizes=(5, 5), chunk_size=chunk_size, dropout=0.0,
        attention_dropout=0.0, activation_dropout=0.0, max_source_positions=6000,
    )  # fmt: skip
    decoder = WaitkTransformerDecoder(
        dictionary, embed_dim=64, layers=2, attention_heads=4, ffn_embed_dim=128, dropout=0.0,
        attention_dropout=0.0, activation_dropout=0.0, max_target_positions=1024,
        waitk_lagging=waitk, pre_decision_ratio=ratio, encoder_prefix_stable=chunk_size > 0,
    )  # fmt: skip
    return WaitkS2TTransformerModel(encoder, decoder, None, None).eval(), dictionary


def make_loaded(chunk_size: int, **kwargs) -> LoadedModel:
    model, dictionary = make_model(chunk_size, **kwargs)
    return LoadedModel(
        model=model, tgt_dict=dictionary, cmvn=None, sample_rate=16000, num_mel_bins=80,
        cfg=None, data_dir=Path("."),
    )  # fmt: skip


def speechlike(seconds: float, rate: int = 16000, seed: int = 0) -> torch.Tensor:
    n = int(seconds * rate)
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(n) / rate
    voiced = 0.3 * torch.sin(2 * math.pi * 180 * t) * (torch.sin(2 * math.pi * 2.5 * t) > 0)
    return (voiced + 0.02 * torch.randn(n, generator=g)).clamp(-1, 1)


@dataclass
class Write:
    delay_ms: float
    text: str
    finished: bool


def simulate(agent, audio: torch.Tensor, rate: int, segment_ms: int) -> list[Write]:
    """Feed ``audio`` as SimulEval 1.1.4's ``SpeechInputInstance.send_source`` does (one
    ``pushpop`` per chunk, the last chunk marked finished, an empty source as one finished
    ``EmptySegment``); return every non-empty write with its delay."""
    agent.reset()
    samples = audio.tolist()
    step, writes = 0, []
    size = math.ceil(segment_ms / 1000 * rate)
    while True:
        if step < len(samples):
            finished = step + size >= len(samples)
            chunk = samples[step : step + size]
            step = min(step + size, len(samples))
            segment = SpeechSegment(
                index=step * 1000 / rate, content=chunk, sample_rate=rate, finished=finished
            )
        else:
            finished = True
            segment = EmptySegment(finished=True)
        out = agent.pushpop(segment)
        if not out.is_empty and (out.content or out.finished):
            writes.append(Write(step * 1000 / rate, out.content, out.finished))
        if finished:
            return writes


def single_thread_env() -> dict[str, str]:
    """Environment for subprocesses: one thread each (the test machine's cores are shared)."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
