"""The encoder side of the agent: fbank frames in, the encoder states of the prefix out.

A chunk-causal encoder (``model.encoder.is_chunk_causal``) encodes only the newly arrived frames
through ``forward_streaming`` and its cached per-layer keys/values, so the cost of a chunk does not
depend on how much audio came before; earlier encoder states never change. A bidirectional
encoder has no such cache: every update re-encodes the whole prefix and may change earlier
states, which :attr:`StreamingEncoder.rewrote_prefix` tells the decoder.

Encoding is lazy: :meth:`StreamingEncoder.push` only queues the frames and counts the states
they will give (``encoder.n_streaming_frames``); the encoder runs when :attr:`states` is read,
i.e. when the policy is about to write. The states are the same, but the chunks that arrive
while the policy only reads (the first k read steps, or when the length guard holds the writer
back) are encoded together in one pass, which reads the weights once instead of once per chunk:
on a CPU, where the per-chunk cost is mostly reading the weights, that is nearly free, and
under computation-aware latency every millisecond before a write delays all later words.
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
        self._queued: list[Tensor] = []
        self._finished = False
        self._encoded_finished = False  # forward_streaming has been called with finished=True
        self.rewrote_prefix = False
        self.n_input_frames = 0
        self.n_frames = 0  # encoder states of the prefix (encoded or queued)

    @property
    def finished(self) -> bool:
        return self._finished

    @property
    def states(self) -> Tensor:
        """Encoder states of the prefix so far, ``[T, 1, C]`` (runs the queued encoding)."""
        self.encode_queued()
        return self._state.encoder_out

    def push(self, feats: Tensor, finished: bool) -> int:
        """Queue new fbank frames ``[T_new, bins]`` (CMVN applied); return the new state count.

        ``finished`` closes the utterance (a chunk-causal encoder then emits its partial last
        chunk). After that, further pushes are ignored. Sets :attr:`rewrote_prefix` when states
        that existed before this call may have changed.
        """
        self.rewrote_prefix = False
        if self._finished:
            return 0
        self._finished = finished
        if feats.shape[0] == 0 and (not finished or not self.caching):
            # nothing new to encode (a bidirectional encoder has no partial chunk to flush)
            return 0
        n_before = self.n_frames
        if feats.shape[0]:
            self._queued.append(feats)
        self.n_input_frames += feats.shape[0]
        self.n_frames = self.encoder.n_streaming_frames(self.n_input_frames, finished)
        self.rewrote_prefix = not self.caching and n_before > 0
        return self.n_frames - n_before

    @torch.inference_mode()
    def encode_queued(self) -> None:
        """Run the encoder on the queued frames (no-op when nothing is queued)."""
        flush = self._finished and self.caching and not self._encoded_finished
        if not self._queued and not flush:
            return
        if not self._queued:  # only the partial last chunk of a chunk-causal encoder to emit
            feats = torch.zeros(0, self.encoder.input_feat_per_channel)
        else:
            feats = torch.cat(self._queued) if len(self._queued) > 1 else self._queued[0]
        self._queued = []
        self._encoded_finished = self._finished
        _, self._state = self.encoder.forward_streaming(feats, self._state, self._finished)
        assert self._state.encoder_out.shape[0] == self.n_frames, "encoder state count"
