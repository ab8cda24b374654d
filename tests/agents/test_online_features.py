"""Chunked feature extraction equals whole-utterance extraction."""
from __future__ import annotations

import math

import pytest
import torch
import torchaudio.compliance.kaldi as kaldi
import torchaudio.functional as AF

from fairseq_mgcm.agents.online_fbank import INT16_SCALE, OnlineFbank
from fairseq_mgcm.agents.resample import StreamingResampler


def _speechlike(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(n) / 16000
    tone = 0.3 * torch.sin(2 * math.pi * 220 * t) * torch.sin(2 * math.pi * 3 * t)
    return (tone + 0.05 * torch.randn(n, generator=g)).clamp(-1, 1)


def _chunks(x: torch.Tensor, size: int) -> list[torch.Tensor]:
    return [x[i : i + size] for i in range(0, x.numel(), size)]


@pytest.mark.parametrize("chunk", [1, 37, 160, 400, 5120, 100000])
def test_chunked_fbank_equals_whole(chunk: int) -> None:
    audio = _speechlike(16000 + 123)
    whole = kaldi.fbank(audio[None] * INT16_SCALE, num_mel_bins=80, sample_frequency=16000)
    fbank = OnlineFbank(80, 16000)
    online = torch.cat([fbank.push(c.tolist()) for c in _chunks(audio, chunk)])
    assert online.shape == whole.shape
    torch.testing.assert_close(online, whole, rtol=1e-4, atol=1e-3)


def test_fbank_short_and_empty_audio() -> None:
    fbank = OnlineFbank(80, 16000)
    assert fbank.push([]).shape == (0, 80)
    assert fbank.push([0.1] * 399).shape == (0, 80)
    assert fbank.push([0.1]).shape == (1, 80)
    assert fbank.n_frames_for(399) == 0 and fbank.n_frames_for(560) == 2
    fbank.reset()
    assert fbank.pending_samples == 0


@pytest.mark.parametrize("orig,new", [(8000, 16000), (44100, 16000), (22050, 16000)])
@pytest.mark.parametrize("chunk", [1000, 7])
def test_streaming_resample_equals_whole(orig: int, new: int, chunk: int) -> None:
    audio = _speechlike(orig // 4 + 11, seed=1)
    whole = AF.resample(audio, orig, new)
    resampler = StreamingResampler(orig, new)
    parts = _chunks(audio, chunk)
    out = torch.cat(
        [resampler.push(c, finished=(i == len(parts) - 1)) for i, c in enumerate(parts)]
    )
    assert out.shape == whole.shape
    torch.testing.assert_close(out, whole, rtol=1e-5, atol=1e-5)


def test_streaming_resample_keeps_bounded_buffer() -> None:
    resampler = StreamingResampler(8000, 16000)
    for _ in range(200):
        resampler.push(torch.zeros(800))
    assert resampler._buffer.numel() < 200
