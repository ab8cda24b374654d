"""Pre-norm transformer layers built from named pieces.

Each layer holds its attention blocks, its feed-forward block and their LayerNorms as separate
child modules (``self_attn``, ``self_attn_layer_norm``, ``ffn``, ``final_layer_norm``, ...), so
the conflict engine's module partition (attention / FFN / LayerNorm) can be read off the module
tree by name.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fairseq_mgcm.models._attention import MultiheadAttention
from fairseq_mgcm.models._kv_cache import KVCache


def sinusoidal_positions(positions: Tensor, dim: int) -> Tensor:
    """Sinusoidal embeddings ``[*positions.shape, dim]`` of absolute integer positions.

    Computed on the fly from absolute positions, so a streaming encoder that starts at frame
    ``offset`` gets exactly the embeddings the whole-utterance forward gives those frames.
    """
    half = dim // 2
    scale = math.log(10000.0) / max(half - 1, 1)
    freqs = torch.exp(torch.arange(half, device=positions.device, dtype=torch.float) * -scale)
    angles = positions.float().unsqueeze(-1) * freqs
    emb = torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)
    if dim % 2 == 1:
        emb = F.pad(emb, (0, 1))
    return emb


class FeedForward(nn.Module):
    """Position-wise feed-forward block: Linear -> ReLU -> dropout -> Linear."""

    def __init__(self, embed_dim: int, hidden_dim: int, activation_dropout: float) -> None:
        super().__init__()
        self.fc1 = nn.Linear(embed_dim, hidden_dim)
        self.fc2 = nn.Linear(hidden_dim, embed_dim)
        self.activation_dropout = nn.Dropout(activation_dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.activation_dropout(F.relu(self.fc1(x))))


class EncoderLayer(nn.Module):
    """Pre-norm self-attention + FFN. ``forward_chunk`` runs on cached keys/values."""

    def __init__(
        self,
        dim: int,
        heads: int,
        ffn_dim: int,
        dropout: float,
        attention_dropout: float,
        activation_dropout: float,
    ) -> None:
        super().__init__()
        self.self_attn_layer_norm = nn.LayerNorm(dim)
        self.self_attn = MultiheadAttention(dim, heads, attention_dropout)
        self.final_layer_norm = nn.LayerNorm(dim)
        self.ffn = FeedForward(dim, ffn_dim, activation_dropout)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, mask: Tensor | None) -> Tensor:
        """``x`` ``[B, T, C]``; ``mask`` boolean, True = may attend."""
        h = self.self_attn_layer_norm(x)
        x = x + self.dropout(self.self_attn(h, h, mask))
        return x + self.dropout(self.ffn(self.final_layer_norm(x)))

    def forward_chunk(
        self, x: Tensor, cache: KVCache | None, mask: Tensor | None = None
    ) -> tuple[Tensor, KVCache]:
        """New frames ``[B, T, C]`` (one or more chunks) attending to themselves and the cached
        keys/values of all earlier chunks; returns the output and the cache extended with them.

        ``mask`` ``[T, T_cached + T]`` (True = may attend) is needed only when ``x`` holds more
        than one chunk; a single chunk sees every cached frame and itself.
        """
        h = self.self_attn_layer_norm(x)
        cache = KVCache.extend(cache, *self.self_attn.project_kv(h))
        x = x + self.dropout(self.self_attn.attend(h, cache.key, cache.value, mask))
        return x + self.dropout(self.ffn(self.final_layer_norm(x))), cache


class DecoderLayer(nn.Module):
    """Pre-norm causal self-attention, encoder attention and FFN, on projected keys/values."""

    def __init__(
        self,
        dim: int,
        heads: int,
        ffn_dim: int,
        dropout: float,
        attention_dropout: float,
        activation_dropout: float,
    ) -> None:
        super().__init__()
        self.self_attn_layer_norm = nn.LayerNorm(dim)
        self.self_attn = MultiheadAttention(dim, heads, attention_dropout)
        self.encoder_attn_layer_norm = nn.LayerNorm(dim)
        self.encoder_attn = MultiheadAttention(dim, heads, attention_dropout)
        self.final_layer_norm = nn.LayerNorm(dim)
        self.ffn = FeedForward(dim, ffn_dim, activation_dropout)
        self.dropout = nn.Dropout(dropout)

    def forward(
        self,
        x: Tensor,
        self_kv: KVCache | None,
        self_mask: Tensor | None,
        encoder_kv: tuple[Tensor, Tensor],
        encoder_mask: Tensor | None,
        attention: list[Tensor] | None = None,
    ) -> tuple[Tensor, KVCache]:
        """``x`` ``[B, T, C]`` new positions; ``self_kv`` cached keys/values of earlier positions
        (or None). Returns the output and the self-attention keys/values including ``x``. A list
        given as ``attention`` receives the encoder attention ``[B, T, T_enc]`` (head mean)."""
        h = self.self_attn_layer_norm(x)
        self_kv = KVCache.extend(self_kv, *self.self_attn.project_kv(h))
        x = x + self.dropout(self.self_attn.attend(h, self_kv.key, self_kv.value, self_mask))
        h = self.encoder_attn_layer_norm(x)
        if attention is None:
            x = x + self.dropout(self.encoder_attn.attend(h, *encoder_kv, encoder_mask))
        else:
            out, weights = self.encoder_attn.attend_with_weights(h, *encoder_kv, encoder_mask)
            attention.append(weights)
            x = x + self.dropout(out)
        return x + self.dropout(self.ffn(self.final_layer_norm(x))), self_kv
