"""Speech encoder: conv subsampler + pre-norm transformer, bidirectional or chunk-causal.

Chunk-causal (``chunk_size`` N > 0): encoder frame t belongs to chunk ``t // N`` and attends to
every frame of its own chunk and of all earlier chunks; the subsampler is then causal too. A
finished chunk's outputs never change when more audio arrives, so :meth:`forward_streaming`
encodes only new chunks, reusing the cached keys/values of earlier chunks in every layer; the
per-chunk cost does not re-run the prefix (attention still reads the cached prefix keys). All
chunks ready in one call go through the layers together (one read of the weights), and the
caches grow in place (``_kv_cache``) rather than being copied on every call.

Bidirectional (N = 0): every frame sees the whole utterance, so streaming re-encodes the whole
prefix on each call.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from fairseq.models import FairseqEncoder
from torch import Tensor, nn

from fairseq_mgcm.models._attention import combine_masks, key_padding_to_mask
from fairseq_mgcm.models._kv_cache import KVCache, append
from fairseq_mgcm.models._layers import EncoderLayer, sinusoidal_positions
from fairseq_mgcm.models._subsampler import Conv1dSubsampler, subsampled_lengths


@dataclass
class EncoderStreamingState:
    """What :meth:`WaitkS2TEncoder.forward_streaming` carries between calls.

    ``encoder_out`` ``[T, 1, C]`` holds every encoder frame produced so far. For a chunk-causal
    encoder these never change; for a bidirectional one each call re-encodes the prefix, so
    earlier frames may change and a consumer should read ``encoder_out`` rather than stitch
    together the returned new frames.
    """

    encoder_out: Tensor
    finished: bool = False
    # chunk-causal: subsampler buffers, subsampled frames waiting for a full chunk (already
    # scaled and position-embedded), per-layer key/value caches, frames subsampled so far, and
    # the buffer ``encoder_out`` is a view of (it grows without copying, see ``_kv_cache``)
    subsampler: list[Tensor] = field(default_factory=list)
    pending: Tensor | None = None
    layer_cache: list[KVCache] | None = None
    n_subsampled: int = 0
    encoder_out_buffer: Tensor | None = None
    # bidirectional: all fbank frames so far
    feats: Tensor | None = None


class WaitkS2TEncoder(FairseqEncoder):
    """``src_tokens`` ``[B, T, 80]`` fbank -> ``encoder_out`` ``[T/4, B, C]`` (fairseq dict)."""

    def __init__(
        self,
        input_feat_per_channel: int,
        embed_dim: int,
        layers: int,
        attention_heads: int,
        ffn_embed_dim: int,
        conv_channels: int,
        conv_kernel_sizes: tuple[int, ...],
        chunk_size: int,
        dropout: float,
        attention_dropout: float,
        activation_dropout: float,
        max_source_positions: int,
    ) -> None:
        super().__init__(None)
        if chunk_size < 0:
            raise ValueError(f"--encoder-chunk-size must be >= 0, got {chunk_size}")
        self.input_feat_per_channel = input_feat_per_channel
        self.chunk_size = chunk_size
        self.max_source_positions = max_source_positions
        self.embed_scale = math.sqrt(embed_dim)
        self.subsample = Conv1dSubsampler(
            input_feat_per_channel,
            conv_channels,
            embed_dim,
            conv_kernel_sizes,
            causal=chunk_size > 0,
        )
        self.dropout = nn.Dropout(dropout)
        self.layers = nn.ModuleList(
            EncoderLayer(
                embed_dim,
                attention_heads,
                ffn_embed_dim,
                dropout,
                attention_dropout,
                activation_dropout,
            )
            for _ in range(layers)
        )
        self.layer_norm = nn.LayerNorm(embed_dim)

    @property
    def is_chunk_causal(self) -> bool:
        return self.chunk_size > 0

    def max_positions(self) -> int:
        return self.max_source_positions

    def _embed(self, feats: Tensor, lengths: Tensor, offset: int = 0) -> tuple[Tensor, Tensor]:
        x, out_lengths = self.subsample(feats, lengths)
        positions = torch.arange(offset, offset + x.shape[1], device=x.device)
        x = self.embed_scale * x + sinusoidal_positions(positions, x.shape[2]).to(x)
        return self.dropout(x), out_lengths

    def chunk_mask(self, length: int, device: torch.device) -> Tensor | None:
        """``[T, T]`` boolean: frame i may attend to frame j (None when bidirectional)."""
        if not self.is_chunk_causal:
            return None
        chunk = torch.arange(length, device=device) // self.chunk_size
        return chunk[None, :] <= chunk[:, None]

    def n_streaming_frames(self, n_feats: int, finished: bool) -> int:
        """Encoder frames ``forward_streaming`` has produced after ``n_feats`` fbank frames.

        Known without running the encoder, so a caller can decide whether it needs the frames
        before paying for them: a chunk-causal encoder emits whole chunks until ``finished``.
        """
        if n_feats <= 0:
            return 0
        n = int(subsampled_lengths(torch.tensor(n_feats), len(self.subsample.conv_layers)))
        if self.is_chunk_causal and not finished:
            n -= n % self.chunk_size
        return n

    def forward(
        self, src_tokens: Tensor, src_lengths: Tensor, **kwargs: object
    ) -> dict[str, list[Tensor]]:
        x, lengths = self._embed(src_tokens, src_lengths)
        return self.encode_embedded(x, lengths, self.chunk_size)

    def encode_embedded(
        self, x: Tensor, lengths: Tensor, chunk_size: int
    ) -> dict[str, list[Tensor]]:
        """Run the shared layers on embedded inputs ``[B, T, C]`` (subsampled speech, or the MT
        auxiliary's token embeddings), each position seeing its chunk of ``chunk_size`` and the
        earlier ones (0: everything)."""
        padding_mask = torch.arange(x.shape[1], device=x.device)[None, :] >= lengths[:, None]
        chunk_mask = None
        if chunk_size > 0:
            chunk = torch.arange(x.shape[1], device=x.device) // chunk_size
            chunk_mask = chunk[None, :] <= chunk[:, None]
        mask = combine_masks(chunk_mask, key_padding_to_mask(padding_mask))
        for layer in self.layers:
            x = layer(x, mask)
        x = self.layer_norm(x)
        return {
            "encoder_out": [x.transpose(0, 1)],  # T x B x C
            "encoder_padding_mask": [padding_mask],  # B x T
            "encoder_embedding": [],
            "encoder_states": [],
            "src_tokens": [],
            "src_lengths": [lengths],
        }

    def reorder_encoder_out(
        self, encoder_out: dict[str, list[Tensor]], new_order: Tensor
    ) -> dict[str, list[Tensor]]:
        """Select batch entries (beam search); time-major tensors on dim 1, others on dim 0."""
        reordered: dict[str, list[Tensor]] = {}
        for key, values in encoder_out.items():
            dim = 1 if key in ("encoder_out", "encoder_states") else 0
            reordered[key] = [v.index_select(dim, new_order) for v in values]
        return reordered

    # ---------------------------------------------------------------- streaming

    def init_streaming_state(self, device: torch.device | None = None) -> EncoderStreamingState:
        weight = self.layer_norm.weight
        device, dtype = device or weight.device, weight.dtype
        dim = weight.shape[0]
        state = EncoderStreamingState(
            encoder_out=torch.zeros(0, 1, dim, device=device, dtype=dtype)
        )
        if self.is_chunk_causal:
            state.subsampler = self.subsample.init_streaming_state(device, dtype)
            state.pending = torch.zeros(1, 0, dim, device=device, dtype=dtype)
        else:
            state.feats = torch.zeros(0, self.input_feat_per_channel, device=device, dtype=dtype)
        return state

    @torch.no_grad()
    def forward_streaming(
        self, feats: Tensor, state: EncoderStreamingState, finished: bool = False
    ) -> tuple[Tensor, EncoderStreamingState]:
        """Encode newly arrived fbank frames ``[T_new, 80]`` (CMVN applied).

        Returns the new encoder frames ``[T_out, 1, C]`` and the updated state. A chunk-causal
        encoder emits only complete chunks until ``finished``, then the remaining partial chunk;
        its output equals :meth:`forward` on the whole utterance. A bidirectional encoder
        re-encodes the whole prefix each call (see :class:`EncoderStreamingState`).
        """
        if state.finished:
            raise RuntimeError("forward_streaming called after finished=True; start a new state")
        if feats.dim() != 2 or feats.shape[1] != self.input_feat_per_channel:
            raise ValueError(
                f"expected fbank features [T, {self.input_feat_per_channel}], got "
                f"{tuple(feats.shape)}"
            )
        feats = feats.to(state.encoder_out)
        if self.is_chunk_causal:
            new = self._stream_chunks(feats, state, finished)
        else:
            new = self._stream_reencode(feats, state)
        state.finished = finished
        return new, state

    def _stream_chunks(self, feats: Tensor, state: EncoderStreamingState, finished: bool) -> Tensor:
        sub, state.subsampler = self.subsample.forward_streaming(feats, state.subsampler)
        positions = torch.arange(
            state.n_subsampled, state.n_subsampled + sub.shape[0], device=sub.device
        )
        x = self.embed_scale * sub + sinusoidal_positions(positions, sub.shape[1]).to(sub)
        state.n_subsampled += sub.shape[0]
        assert state.pending is not None
        pending = torch.cat([state.pending, self.dropout(x).unsqueeze(0)], dim=1)
        n_ready = (
            pending.shape[1]
            if finished
            else (pending.shape[1] // self.chunk_size) * self.chunk_size
        )
        state.pending = pending[:, n_ready:]
        if n_ready == 0:
            return state.encoder_out[:0]
        # all ready chunks in one pass (one read of the weights), each chunk seeing itself and
        # the chunks before it, as in forward()
        h = pending[:, :n_ready]
        n_done = state.encoder_out.shape[0]  # a multiple of chunk_size
        mask = None
        if n_ready > self.chunk_size:
            chunk = torch.arange(n_done + n_ready, device=h.device) // self.chunk_size
            mask = chunk[None, :] <= chunk[n_done:, None]
        caches = state.layer_cache or [None] * len(self.layers)
        state.layer_cache = []
        for layer, cache in zip(self.layers, caches):
            h, cache = layer.forward_chunk(h, cache, mask)
            state.layer_cache.append(cache)
        new = self.layer_norm(h).transpose(0, 1)
        state.encoder_out_buffer, state.encoder_out = append(
            state.encoder_out_buffer, state.encoder_out, new, dim=0
        )
        return new

    def _stream_reencode(self, feats: Tensor, state: EncoderStreamingState) -> Tensor:
        assert state.feats is not None
        state.feats = torch.cat([state.feats, feats], dim=0)
        n_before = state.encoder_out.shape[0]
        if state.feats.shape[0] == 0:
            return state.encoder_out
        lengths = torch.tensor([state.feats.shape[0]], device=feats.device)
        state.encoder_out = self.forward(state.feats.unsqueeze(0), lengths)["encoder_out"][0]
        return state.encoder_out[n_before:]
