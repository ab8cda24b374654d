"""Multi-head attention whose keys and values can be projected, cached and extended separately.

fairseq's ``MultiheadAttention`` caches the encoder-side keys of the *first* incremental call
("static_kv"), which is wrong for simultaneous decoding, where the encoder output grows between
calls. Splitting the key/value projection (:meth:`project_kv`) from the attention itself
(:meth:`attend`) lets the encoder cache keys of finished chunks and lets the decoder extend its
encoder-side cache when more frames arrive.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class MultiheadAttention(nn.Module):
    """Scaled dot-product attention, batch-first: inputs ``[B, T, C]``, keys ``[B, H, T, D]``."""

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if embed_dim % num_heads != 0:
            raise ValueError(f"embed_dim {embed_dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads
        self.dropout = dropout
        self.q_proj = nn.Linear(embed_dim, embed_dim)
        self.k_proj = nn.Linear(embed_dim, embed_dim)
        self.v_proj = nn.Linear(embed_dim, embed_dim)
        self.out_proj = nn.Linear(embed_dim, embed_dim)
        for proj in (self.q_proj, self.k_proj, self.v_proj):
            nn.init.xavier_uniform_(proj.weight, gain=2**-0.5)
        nn.init.xavier_uniform_(self.out_proj.weight)
        nn.init.zeros_(self.out_proj.bias)

    def _split_heads(self, x: Tensor) -> Tensor:
        batch, time, _ = x.shape
        return x.view(batch, time, self.num_heads, self.head_dim).transpose(1, 2)

    def project_kv(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Keys and values ``[B, H, T, D]`` of the inputs ``x`` ``[B, T, C]``."""
        return self._split_heads(self.k_proj(x)), self._split_heads(self.v_proj(x))

    def attend(self, query: Tensor, key: Tensor, value: Tensor, mask: Tensor | None) -> Tensor:
        """Attend from ``query`` ``[B, Tq, C]`` to projected ``key``/``value``.

        ``mask`` is boolean, True where attention is allowed, broadcastable to
        ``[B, H, Tq, Tk]``. Every query row must allow at least one key.
        """
        q = self._split_heads(self.q_proj(query))
        out = F.scaled_dot_product_attention(
            q, key, value, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0
        )
        batch, _, time, _ = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(batch, time, -1))

    def attend_with_weights(self, query: Tensor, key: Tensor, value: Tensor,
                            mask: Tensor | None) -> tuple[Tensor, Tensor]:
        """:meth:`attend` written out, also returning the attention weights averaged over the
        heads ``[B, Tq, Tk]``: what attention-based simultaneous policies (AlignAtt, EDAtt)
        read at inference. No dropout: inference only."""
        q = self._split_heads(self.q_proj(query))
        scores = (q @ key.transpose(-2, -1)) * self.head_dim**-0.5
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        weights = scores.float().softmax(dim=-1).to(value.dtype)
        out = weights @ value
        batch, _, time, _ = out.shape
        return (self.out_proj(out.transpose(1, 2).reshape(batch, time, -1)),
                weights.float().mean(dim=1))

    def forward(self, query: Tensor, source: Tensor, mask: Tensor | None = None) -> Tensor:
        key, value = self.project_kv(source)
        return self.attend(query, key, value, mask)


def key_padding_to_mask(padding_mask: Tensor | None) -> Tensor | None:
    """``[B, Tk]`` padding mask (True = pad) -> attention mask ``[B, 1, 1, Tk]`` (True = keep)."""
    if padding_mask is None:
        return None
    return (~padding_mask)[:, None, None, :]


def combine_masks(*masks: Tensor | None) -> Tensor | None:
    """Logical AND of broadcastable boolean masks, ignoring ``None``."""
    result: Tensor | None = None
    for mask in masks:
        if mask is not None:
            result = mask if result is None else result & mask
    return result


def causal_mask(length: int, device: torch.device, offset: int = 0) -> Tensor:
    """``[length, offset + length]``: query i sees keys ``[0, offset + i]``."""
    rows = torch.arange(length, device=device)[:, None] + offset
    cols = torch.arange(offset + length, device=device)[None, :]
    return cols <= rows
