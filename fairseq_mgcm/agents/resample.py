"""Band-limited resampling of an audio stream, chunk by chunk, equal to resampling the whole.

The model was trained on audio at one sample rate (``sample_rate`` in the data config, 16 kHz by
default). SimulEval passes each chunk with the file's own rate; audio at another rate is resampled
here rather than refused. ``torchaudio``'s sinc resampler maps each block of ``orig`` input samples
(rates reduced by their gcd) to ``new`` output samples through a fixed window of ``width``
samples either side, so a block can be computed as soon as its window has arrived; keeping only
the samples that later blocks still need makes the cost per chunk independent of the prefix.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torchaudio.transforms import Resample


class StreamingResampler:
    """Resample a stream from ``orig_freq`` to ``new_freq``; ``push`` returns the new samples."""

    def __init__(self, orig_freq: int, new_freq: int) -> None:
        if orig_freq <= 0 or new_freq <= 0:
            raise ValueError(f"sample rates must be positive, got {orig_freq} -> {new_freq}")
        self.orig_freq = orig_freq
        self.new_freq = new_freq
        gcd = math.gcd(orig_freq, new_freq)
        self._orig = orig_freq // gcd
        self._new = new_freq // gcd
        resample = Resample(orig_freq, new_freq)
        self._kernel: torch.Tensor = resample.kernel  # [new, 1, 2 * width + orig]
        self._width: int = resample.width
        self.reset()

    def reset(self) -> None:
        """Start a new stream."""
        # Input samples from absolute index self._buffer_start on; the first `width` input
        # samples of the stream are preceded by zeros, as torchaudio pads them.
        self._buffer = torch.zeros(self._width)
        self._buffer_start = -self._width
        self._next_block = 0
        self._n_input = 0
        self._n_output = 0

    def push(self, samples: torch.Tensor, finished: bool = False) -> torch.Tensor:
        """Append input samples; return the output samples whose window is complete.

        With ``finished=True`` the stream is closed: the end is zero-padded and the remaining
        output samples (``ceil(len_in * new / orig)`` in all) are returned.
        """
        samples = samples.reshape(-1).to(torch.float32)
        self._buffer = torch.cat([self._buffer, samples])
        self._n_input += samples.numel()
        block_len = 2 * self._width + self._orig
        if finished:
            total_out = math.ceil(self._new * self._n_input / self._orig)
            pad = self._width + self._orig
            self._buffer = F.pad(self._buffer, (0, pad))
        # Block b reads absolute input samples [b*orig - width, b*orig - width + block_len).
        available_end = self._buffer_start + self._buffer.numel()
        last_block = (available_end - block_len + self._width) // self._orig  # inclusive
        n_blocks = last_block - self._next_block + 1
        if n_blocks <= 0:
            out = torch.zeros(0)
        else:
            offset = self._next_block * self._orig - self._width - self._buffer_start
            window = self._buffer[offset : offset + (n_blocks - 1) * self._orig + block_len]
            out = F.conv1d(window[None, None], self._kernel, stride=self._orig)
            out = out.transpose(1, 2).reshape(-1)
            self._next_block += n_blocks
            keep_from = self._next_block * self._orig - self._width - self._buffer_start
            self._buffer = self._buffer[keep_from:]
            self._buffer_start += keep_from
        if finished:
            out = out[: max(0, total_out - self._n_output)]
        self._n_output += out.numel()
        return out
