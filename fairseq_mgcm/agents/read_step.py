"""The model's read step in milliseconds: the audio one wait-k read step waits for.

A read step is ``pre_decision_ratio`` encoder states (``models/config.py``); each encoder state
is ``2 ** n_conv`` fbank frames (the subsampler's stride-2 convolutions, 4x with the default
``conv_kernel_sizes`` "5,5"), and each fbank frame is a 10 ms shift. So the paper model
(r = 8) reads in steps of 320 ms, the tiny one (r = 2) in steps of 80 ms. SimulEval segments
much smaller than this only add calls that have nothing new to decide; larger ones delay
every write to the segment's end.
"""
from __future__ import annotations

from typing import Any

from torch import nn

FRAME_SHIFT_MS = 10  # fbank frame shift, as in training (fairseq's get_fbank, online_fbank.py)


def read_step_ms_from_cfg(model_cfg: Any) -> int:
    """Read step of a checkpoint's model config (``cfg["model"]``, a mapping)."""
    n_conv = len(str(model_cfg["conv_kernel_sizes"]).split(","))
    return int(model_cfg["pre_decision_ratio"]) * FRAME_SHIFT_MS * 2**n_conv


def read_step_ms(model: nn.Module) -> int:
    """Read step of a built model (``model.pre_decision_ratio``, its subsampler's convs)."""
    n_conv = len(model.encoder.subsample.conv_layers)
    return int(model.pre_decision_ratio) * FRAME_SHIFT_MS * 2**n_conv
