"""The encoder side of the agent: fbank frames in, the encoder states of the prefix out.

A chunk-causal encoder (``model.encoder.is_chunk_causal``) encodes only the newly arrived frames
through ``forward_streaming`` and its cached per-layer keys/values, so the cost of a chunk does not
depend on how much audio came before; earlier encoder states never change. A bidirectional
encoder has no such cache: every update re-encodes the whole prefix and may change earlier
states, which :attr:`StreamingEncoder.rewrote_prefix` tells the decoder.
"""
from __future__ import annotations

import logging

import torch
from torch import Tensor, nn

logger = logging.getLogger(__name__)


class StreamingEncoder:
    """Feeds fbank frames to ``encoder.forward_streaming`` and holds the encoder states so far."""

    def __init__(self, encoder: nn.Module) -> None:
        self.encoder = encoder
        self.caching = bool(encoder.is_chunk_causal)
        if not self.caching:
            logger.info(
                "bidirectional encoder: the agent re-encodes the whole source prefix on every "
                "chunk (cost grows with the prefix; a chunk-causal model avoids this)"
            )
        self.reset()

    def reset(self) -> None:
        """Start a new utterance."""
        self._state = self.encoder.init_streaming_state()
        self._finished = False
        self.rewrote_prefix = False
        self.n_input_frames = 0

    @property
    def finished(self) -> bool:
        return self._finished

    @property
    def states(self) -> Tensor:
        """Encoder states of the prefix so far, ``[T, 1, C]``."""
        return self._state.encoder_out

    @property
    def n_frames(self) -> int:
        return self._state.encoder_out.shape[0]

    @torch.inference_mode()
    def push(self, feats: Tensor, finished: bool) -> int:
        """Encode new fbank frames ``[T_new, bins]`` (CMVN applied); return the new state count.

        ``finished`` closes the utterance (a chunk-causal encoder then emits its partial last
        chunk). After that, further pushes are ignored. Sets :attr:`rewrote_prefix` when states
        that existed before this call may have changed.
        """
        self.rewrote_prefix = False
        if self._finished:
            return 0
        if feats.shape[0] == 0 and (not finished or not self.caching):
            # nothing new to encode (a bidirectional encoder has no partial chunk to flush)
            self._finished = finished
            return 0
        n_before = self.n_frames
        self.n_input_frames += feats.shape[0]
        _, self._state = self.encoder.forward_streaming(feats, self._state, finished=finished)
        self._finished = finished
        self.rewrote_prefix = not self.caching and n_before > 0
        return self.n_frames - n_before
