"""Transformer decoder with a wait-k encoder-attention mask and a growable encoder cache.

Training (no ``incremental_state``): target token i (0-based) attends only to encoder frames
``[0, (k + i) * r)``, k the lagging and r the pre-decision ratio (encoder frames per read step).
With multipath wait-k each training batch takes the full-context path with probability p
(default ``1 / (K + 1)``) and otherwise a k drawn uniformly from ``[1, K]``: Elbayad et al.
(2020) train every k up to the source length, and without the full-context path offline decoding
(``fairseq-generate``, ``--eval-bleu``, a sweep's k = 1000) would run the model in a setting it
never trained in. With no k the decoder is offline (sees every frame). The MT auxiliary passes
its own :class:`ReadSchedule` (k in source tokens, one token per read step).

Inference (``incremental_state`` given): the decoder attends to all encoder frames it is handed,
because the caller (the SimulEval agent, or fairseq's SequenceGenerator for offline decoding)
decides how many frames exist. The encoder-side keys/values are cached per layer and, unlike
fairseq's static-kv cache, follow the encoder when it grows: new frames are projected and
appended when the encoder's prefix is stable (chunk-causal), everything is re-projected otherwise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from fairseq.data import Dictionary
from fairseq.models import FairseqIncrementalDecoder
from torch import Tensor, nn

from fairseq_mgcm.models._attention import causal_mask, combine_masks, key_padding_to_mask
from fairseq_mgcm.models._kv_cache import KVCache
from fairseq_mgcm.models._layers import DecoderLayer, sinusoidal_positions

IncrementalState = dict[str, dict[str, Tensor | None]]


@dataclass(frozen=True)
class ReadSchedule:
    """How a training forward masks the encoder: token i reads ``[0, (k + i) * ratio)``.

    ``lagging`` None: offline. ``multipath``: k drawn per forward (see the module docstring),
    ``full_context_prob`` the chance of the full-context path then.
    """

    lagging: int | None
    ratio: int = 1
    multipath: bool = False
    full_context_prob: float = 0.0

    def __post_init__(self) -> None:
        if self.lagging is not None and self.lagging < 1:
            raise ValueError(f"--waitk-lagging must be >= 1, got {self.lagging}")
        if self.ratio < 1:
            raise ValueError(f"--pre-decision-ratio must be >= 1, got {self.ratio}")
        if self.multipath and self.lagging is None:
            raise ValueError("--waitk-multipath needs --waitk-lagging (the largest k to sample)")
        if not 0.0 <= self.full_context_prob <= 1.0:
            raise ValueError(
                f"--waitk-full-context-prob must be in [0, 1], got {self.full_context_prob}"
            )

    def sample(self, training: bool) -> int | None:
        """The k of one forward pass (None: full context)."""
        if not (self.multipath and training):
            return self.lagging
        assert self.lagging is not None
        if self.full_context_prob > 0 and float(torch.rand(())) < self.full_context_prob:
            return None
        return int(torch.randint(1, self.lagging + 1, ()).item())


def default_full_context_prob(lagging: int | None, prob: float | None) -> float:
    """``prob`` if given, else ``1 / (K + 1)``: k uniform over ``{1..K, infinity}``."""
    if prob is not None:
        return prob
    return 1.0 / (lagging + 1) if lagging is not None else 0.0


class WaitkTransformerDecoder(FairseqIncrementalDecoder):
    """Pre-norm transformer decoder; ``waitk_lagging=None`` makes it an offline decoder."""

    def __init__(
        self,
        dictionary: Dictionary,
        embed_dim: int,
        layers: int,
        attention_heads: int,
        ffn_embed_dim: int,
        dropout: float,
        attention_dropout: float,
        activation_dropout: float,
        max_target_positions: int,
        share_input_output_embed: bool = True,
        waitk_lagging: int | None = None,
        pre_decision_ratio: int = 1,
        waitk_multipath: bool = False,
        encoder_prefix_stable: bool = False,
        full_context_prob: float = 0.0,
    ) -> None:
        super().__init__(dictionary)
        self.schedule = ReadSchedule(
            waitk_lagging, pre_decision_ratio, waitk_multipath, full_context_prob
        )
        self.waitk_lagging = waitk_lagging
        self.pre_decision_ratio = pre_decision_ratio
        self.waitk_multipath = waitk_multipath
        self.encoder_prefix_stable = encoder_prefix_stable
        self.max_target_positions = max_target_positions
        self.embed_scale = math.sqrt(embed_dim)
        self.embed_tokens = nn.Embedding(len(dictionary), embed_dim, dictionary.pad())
        nn.init.normal_(self.embed_tokens.weight, mean=0.0, std=embed_dim**-0.5)
        nn.init.zeros_(self.embed_tokens.weight[dictionary.pad()])
        self.dropout = nn.Dropout(dropout)
        self.layers = nn.ModuleList(
            DecoderLayer(
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
        self.output_projection = nn.Linear(embed_dim, len(dictionary), bias=False)
        if share_input_output_embed:
            self.output_projection.weight = self.embed_tokens.weight
        else:
            nn.init.normal_(self.output_projection.weight, mean=0.0, std=embed_dim**-0.5)

    def max_positions(self) -> int:
        return self.max_target_positions

    def sample_lagging(self) -> int | None:
        """The k for this forward pass (see :meth:`ReadSchedule.sample`; None: full context)."""
        return self.schedule.sample(self.training)

    def waitk_mask(
        self,
        tgt_len: int,
        src_len: int,
        k: int | None,
        device: torch.device,
        ratio: int | None = None,
    ) -> Tensor | None:
        """``[tgt_len, src_len]`` boolean: token i may read frames ``[0, (k + i) * r)``
        (r = ``ratio``, default the pre-decision ratio)."""
        if k is None:
            return None
        ratio = self.pre_decision_ratio if ratio is None else ratio
        limits = (k + torch.arange(tgt_len, device=device)) * ratio
        return torch.arange(src_len, device=device)[None, :] < limits[:, None]

    def forward(
        self,
        prev_output_tokens: Tensor,
        encoder_out: dict[str, list[Tensor]] | None = None,
        incremental_state: IncrementalState | None = None,
        features_only: bool = False,
        refresh_encoder_cache: bool = False,
        read_schedule: ReadSchedule | None = None,
        attention_layer: int | None = None,
        **kwargs: object,
    ) -> tuple[Tensor, dict]:
        """``read_schedule`` replaces the decoder's own wait-k schedule for this training
        forward (the MT auxiliary reads source tokens, not encoder frames).
        ``attention_layer`` (inference): ``extra["attn"][0]`` is that layer's encoder attention
        ``[B, T_new, T_enc]``, averaged over its heads."""
        x, extra = self.extract_features(
            prev_output_tokens,
            encoder_out,
            incremental_state,
            refresh_encoder_cache,
            read_schedule=read_schedule,
            attention_layer=attention_layer,
        )
        return (x if features_only else self.output_layer(x)), extra

    def output_layer(self, features: Tensor) -> Tensor:
        return self.output_projection(features)

    def extract_features(
        self,
        prev_output_tokens: Tensor,
        encoder_out: dict[str, list[Tensor]] | None = None,
        incremental_state: IncrementalState | None = None,
        refresh_encoder_cache: bool = False,
        read_schedule: ReadSchedule | None = None,
        attention_layer: int | None = None,
        **kwargs: object,
    ) -> tuple[Tensor, dict]:
        """Features ``[B, T_new, C]`` of the positions not yet in ``incremental_state``."""
        if attention_layer is not None and not -len(self.layers) <= attention_layer < len(
                self.layers):
            raise ValueError(f"attention_layer {attention_layer}: the decoder has "
                             f"{len(self.layers)} layers")
        wanted = None if attention_layer is None else attention_layer % len(self.layers)
        attention: list[Tensor] = []
        if encoder_out is None:
            raise ValueError("the decoder needs encoder_out")
        enc = encoder_out["encoder_out"][0].transpose(0, 1)  # B x T x C
        pads = encoder_out.get("encoder_padding_mask", [])
        enc_padding = pads[0] if len(pads) > 0 else None

        incremental = incremental_state is not None
        cache: dict[str, Tensor | None] = {}
        if incremental:
            cache = self.get_incremental_state(incremental_state, "cache") or {}
        n_done = cache["self_k_0"].shape[2] if cache.get("self_k_0") is not None else 0
        tokens = prev_output_tokens[:, n_done:]
        n_new = tokens.shape[1]
        if n_new == 0:
            raise ValueError(
                f"no new target positions: incremental_state already holds all {n_done} tokens"
            )

        positions = torch.arange(n_done, n_done + n_new, device=tokens.device)
        x = self.embed_scale * self.embed_tokens(tokens)
        x = self.dropout(x + sinusoidal_positions(positions, x.shape[2]).to(x))

        # one new position may see every cached one: no mask (the common incremental step)
        self_mask = causal_mask(n_new, x.device, offset=n_done) if n_new > 1 else None
        schedule = read_schedule or self.schedule
        k = None if incremental else schedule.sample(self.training)
        encoder_mask = combine_masks(
            self.waitk_mask(n_new, enc.shape[1], k, x.device, schedule.ratio),
            key_padding_to_mask(enc_padding),
        )
        for i, layer in enumerate(self.layers):
            encoder_kv = self._encoder_kv(
                i, enc, cache if incremental else None, refresh_encoder_cache
            )
            self_kv = None
            if n_done > 0:
                self_kv = KVCache(
                    cache[f"self_k_{i}"], cache[f"self_v_{i}"],
                    cache.get(f"self_kbuf_{i}"), cache.get(f"self_vbuf_{i}"),
                )  # fmt: skip
            x, self_kv = layer(x, self_kv, self_mask, encoder_kv, encoder_mask,
                               attention if i == wanted else None)
            if incremental:
                cache[f"self_k_{i}"], cache[f"self_v_{i}"] = self_kv.key, self_kv.value
                cache[f"self_kbuf_{i}"], cache[f"self_vbuf_{i}"] = (
                    self_kv.key_buffer,
                    self_kv.value_buffer,
                )
        x = self.layer_norm(x)
        if incremental:
            self.set_incremental_state(incremental_state, "cache", cache)
        return x, {"attn": [attention[0] if attention else None], "inner_states": None,
                   "waitk_lagging": k}

    def _encoder_kv(
        self, i: int, enc: Tensor, cache: dict[str, Tensor | None] | None, refresh: bool
    ) -> tuple[Tensor, Tensor]:
        attn = self.layers[i].encoder_attn
        if cache is None:
            return attn.project_kv(enc)
        key, value = cache.get(f"enc_k_{i}"), cache.get(f"enc_v_{i}")
        n_cached = key.shape[2] if key is not None else -1
        n_frames = enc.shape[1]
        if key is None or value is None or refresh or n_cached > n_frames:
            key, value = attn.project_kv(enc)
            cache[f"enc_kbuf_{i}"] = cache[f"enc_vbuf_{i}"] = None
        elif n_cached < n_frames:
            if self.encoder_prefix_stable:
                # append the new frames' keys/values in place (no copy of the cached ones)
                old = KVCache(key, value, cache.get(f"enc_kbuf_{i}"), cache.get(f"enc_vbuf_{i}"))
                new = KVCache.extend(old, *attn.project_kv(enc[:, n_cached:]))
                key, value = new.key, new.value
                cache[f"enc_kbuf_{i}"], cache[f"enc_vbuf_{i}"] = new.key_buffer, new.value_buffer
            else:
                key, value = attn.project_kv(enc)
        cache[f"enc_k_{i}"], cache[f"enc_v_{i}"] = key, value
        return key, value

    def reorder_incremental_state(
        self, incremental_state: IncrementalState, new_order: Tensor
    ) -> None:
        cache = self.get_incremental_state(incremental_state, "cache")
        if cache is None:
            return
        # index_select copies: the growable buffers of the encoder-side cache are dropped and
        # rebuilt on the next extension
        reordered = {
            key: (value.index_select(0, new_order) if value is not None else None)
            for key, value in cache.items()
            if "buf_" not in key
        }
        self.set_incremental_state(incremental_state, "cache", reordered)
