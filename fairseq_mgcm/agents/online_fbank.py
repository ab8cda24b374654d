"""Log-mel filterbank features computed chunk by chunk, equal to the whole-utterance features.

Training features come from Kaldi-compatible fbank (``torchaudio.compliance.kaldi.fbank``, as
fairseq's ``get_fbank`` computes them) over 16-bit-scale samples. SimulEval 1.1.4 hands the agent
float samples in [-1, 1], a chunk at a time. Each fbank frame depends only on its own 25 ms
window, so if the samples that do not yet fill a whole frame are carried over to the next chunk,
the frames computed chunk by chunk are the frames of the whole utterance (``snip_edges``: a
partial window at the very end yields no frame, offline or online).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torchaudio.compliance.kaldi as kaldi

INT16_SCALE = float(2**15)


class OnlineFbank:
    """Incremental Kaldi fbank: ``push`` chunks of audio, get the frames they complete.

    Example::

        fbank = OnlineFbank(num_mel_bins=80, sample_rate=16000)
        frames = fbank.push(chunk)  # float [n_new_frames, 80]
    """

    def __init__(
        self,
        num_mel_bins: int = 80,
        sample_rate: int = 16000,
        frame_length_ms: float = 25.0,
        frame_shift_ms: float = 10.0,
    ) -> None:
        self.num_mel_bins = num_mel_bins
        self.sample_rate = sample_rate
        self.frame_length_ms = frame_length_ms
        self.frame_shift_ms = frame_shift_ms
        self.window = int(sample_rate * frame_length_ms / 1000)
        self.shift = int(sample_rate * frame_shift_ms / 1000)
        self._leftover = torch.zeros(0)

    def reset(self) -> None:
        """Forget carried-over samples (a new utterance starts)."""
        self._leftover = torch.zeros(0)

    @property
    def pending_samples(self) -> int:
        """Samples received but not yet consumed by a complete frame shift."""
        return self._leftover.numel()

    def push(self, samples: Sequence[float] | torch.Tensor) -> torch.Tensor:
        """Append float samples in [-1, 1] and return the newly completed frames [n, bins]."""
        chunk = torch.as_tensor(samples, dtype=torch.float32).reshape(-1) * INT16_SCALE
        buffer = torch.cat([self._leftover, chunk])
        if buffer.numel() < self.window:
            self._leftover = buffer
            return torch.zeros(0, self.num_mel_bins)
        n_frames = 1 + (buffer.numel() - self.window) // self.shift
        used = (n_frames - 1) * self.shift + self.window
        frames = kaldi.fbank(
            buffer[:used].unsqueeze(0),
            num_mel_bins=self.num_mel_bins,
            sample_frequency=self.sample_rate,
            frame_length=self.frame_length_ms,
            frame_shift=self.frame_shift_ms,
            dither=0.0,
        )
        self._leftover = buffer[n_frames * self.shift :].clone()
        return frames

    def n_frames_for(self, n_samples: int) -> int:
        """How many frames the offline fbank yields for ``n_samples`` samples."""
        if n_samples < self.window:
            return 0
        return 1 + (n_samples - self.window) // self.shift
