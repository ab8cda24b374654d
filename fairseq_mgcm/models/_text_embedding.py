"""The MT auxiliary's front-end: English tokens to encoder inputs, in place of the subsampler.

The paper's base model (DiSeg) trains SimulMT next to SimulST and SimulASR: the transcript runs
through the *same* transformer encoder layers as the speech, so the MT gradient reaches the
shared encoder. Only this embedding (and its positions) is MT's own; the speech subsampler is
skipped.
"""

from __future__ import annotations

import math

import torch
from fairseq.data import Dictionary
from torch import Tensor, nn

from fairseq_mgcm.models._layers import sinusoidal_positions


class TextEmbedding(nn.Module):
    """``tokens`` ``[B, S]`` -> ``sqrt(C) * embedding + sinusoidal positions`` ``[B, S, C]``.

    Scaled and position-embedded like the speech path after its subsampler, so the shared layers
    see inputs of the same scale from both.
    """

    def __init__(self, dictionary: Dictionary, embed_dim: int, dropout: float) -> None:
        super().__init__()
        self.padding_idx = dictionary.pad()
        self.embed_scale = math.sqrt(embed_dim)
        self.embed_tokens = nn.Embedding(len(dictionary), embed_dim, self.padding_idx)
        nn.init.normal_(self.embed_tokens.weight, mean=0.0, std=embed_dim**-0.5)
        nn.init.zeros_(self.embed_tokens.weight[self.padding_idx])
        self.dropout = nn.Dropout(dropout)

    def forward(self, tokens: Tensor) -> Tensor:
        x = self.embed_scale * self.embed_tokens(tokens)
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        return self.dropout(x + sinusoidal_positions(positions, x.shape[2]).to(x))
