"""Convolutional subsampler (4x in time) that can run causally and on streaming input.

Two stride-2 Conv1d + GLU layers, as in fairseq's S2T transformer. In *causal* mode each
convolution is padded on the left only (``kernel - 1`` zeros), so output frame t depends on input
frames ``<= 2t`` and never on the future: the streaming path then reproduces the whole-utterance
output exactly by carrying the last unconsumed input frames of every layer between calls.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def subsampled_lengths(lengths: Tensor, num_layers: int) -> Tensor:
    """Output lengths after ``num_layers`` stride-2 layers: ``ceil(L / 2)`` per layer."""
    for _ in range(num_layers):
        lengths = torch.div(lengths - 1, 2, rounding_mode="floor") + 1
    return lengths


class Conv1dSubsampler(nn.Module):
    """``[B, T, in_dim]`` -> ``[B, ceil(T / 4), out_dim]`` with odd kernels and stride 2."""

    def __init__(
        self,
        in_dim: int,
        mid_channels: int,
        out_dim: int,
        kernel_sizes: tuple[int, ...] = (5, 5),
        causal: bool = False,
    ) -> None:
        super().__init__()
        if any(k % 2 == 0 for k in kernel_sizes):
            raise ValueError(f"conv kernel sizes must be odd, got {kernel_sizes}")
        self.causal = causal
        self.kernel_sizes = tuple(kernel_sizes)
        n = len(kernel_sizes)
        self.conv_layers = nn.ModuleList(
            nn.Conv1d(
                in_dim if i == 0 else mid_channels // 2,
                mid_channels if i < n - 1 else out_dim * 2,
                k,
                stride=2,
            )
            for i, k in enumerate(kernel_sizes)
        )

    def _padding(self, kernel: int) -> tuple[int, int]:
        return (kernel - 1, 0) if self.causal else (kernel // 2, kernel // 2)

    def forward(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        h = x.transpose(1, 2)  # [B, F, T]
        for conv, k in zip(self.conv_layers, self.kernel_sizes):
            h = F.glu(conv(F.pad(h, self._padding(k))), dim=1)
        return h.transpose(1, 2), subsampled_lengths(lengths, len(self.conv_layers))

    def init_streaming_state(
        self, device: torch.device | None = None, dtype: torch.dtype | None = None
    ) -> list[Tensor]:
        """Per layer, the input frames not yet consumed, starting with the left zero padding."""
        if not self.causal:
            raise RuntimeError("streaming subsampling needs a causal subsampler")
        return [
            torch.zeros(1, conv.in_channels, k - 1, device=device, dtype=dtype)
            for conv, k in zip(self.conv_layers, self.kernel_sizes)
        ]

    def forward_streaming(self, x: Tensor, state: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        """New input frames ``[T_new, in_dim]`` -> new output frames ``[T_out, out_dim]``.

        Emits every output frame whose receptive field is complete; the rest of the input waits
        in ``state``. No flush is needed at the end: in causal mode the last output frame only
        needs inputs up to the last one.
        """
        h = x.t().unsqueeze(0)  # [1, F, T]
        new_state: list[Tensor] = []
        for conv, k, buffer in zip(self.conv_layers, self.kernel_sizes, state):
            buffer = torch.cat([buffer, h], dim=2)
            n_out = (buffer.shape[2] - k) // 2 + 1 if buffer.shape[2] >= k else 0
            if n_out > 0:
                h = F.glu(conv(buffer[:, :, : k + 2 * (n_out - 1)]), dim=1)
            else:
                h = buffer.new_zeros(1, conv.out_channels // 2, 0)
            new_state.append(buffer[:, :, 2 * n_out :])
        return h[0].t(), new_state
