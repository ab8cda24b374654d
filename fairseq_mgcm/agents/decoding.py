"""Greedy incremental decoding over an encoder prefix that grows between calls.

The decoder keeps its self-attention keys/values and its projected encoder keys/values in a
fairseq ``incremental_state``; the model's decoder extends the encoder-side cache when new
encoder states arrive (or re-projects them when the encoder rewrote its prefix). A prediction
can be taken back (:meth:`GreedyDecoder.rollback`): a wait-k agent that predicts end-of-sentence
before the source has ended reads more instead, and must then predict the same position again
with more source.

The token rules are those of fairseq's ``SequenceGenerator`` with beam 1, so that with the whole
source the output equals ``fairseq-generate``: padding never, end-of-sentence not as the first
token (``min_len`` 1). The generator forces end-of-sentence after ``max_len`` tokens; the agent
applies that limit itself (``WaitkAgent.max_target_tokens``).
"""
from __future__ import annotations

import math

import torch
from fairseq.data import Dictionary
from torch import Tensor, nn

State = dict[str, dict[str, Tensor | None]]
"""A decoder's incremental state (fairseq's ``incremental_state``)."""


class GreedyDecoder:
    """Predicts the next target token from the tokens so far and the encoder states so far."""

    def __init__(self, decoder: nn.Module, dictionary: Dictionary,
                 attention_layer: int | None = None) -> None:
        """``attention_layer``: read that layer's encoder attention at every prediction
        (:attr:`attention`), for the attention-based policies."""
        self.decoder = decoder
        self.dictionary = dictionary
        self.eos = dictionary.eos()
        self.pad = dictionary.pad()
        self.attention_layer = attention_layer
        self.reset()

    def reset(self) -> None:
        """Start a new hypothesis (tokens start with end-of-sentence, as in fairseq)."""
        self.tokens: list[int] = [self.eos]
        self._incremental_state: State = {}
        self._snapshot: State | None = None
        self.attention: Tensor | None = None
        """The last prediction's encoder attention ``[T]`` over the visible states."""

    @property
    def n_written(self) -> int:
        """Target tokens committed so far (the leading end-of-sentence excluded)."""
        return len(self.tokens) - 1

    @torch.inference_mode()
    def predict(self, encoder_states: Tensor, refresh_encoder: bool, n_hidden: int = 0) -> int:
        """The greedy next token given encoder states ``[T, 1, C]`` (T >= 1).

        ``refresh_encoder``: the encoder rewrote states the decoder has cached. ``n_hidden``:
        the first states are left context the decoder must not attend to (as padding).
        """
        self._snapshot = _copied(self._incremental_state)
        device = encoder_states.device
        prev = torch.tensor([self.tokens], device=device)
        padding: list[Tensor] = []
        if n_hidden:
            padding = [torch.arange(encoder_states.shape[0], device=device)[None, :] < n_hidden]
        encoder_out = {"encoder_out": [encoder_states], "encoder_padding_mask": padding}
        logits, extra = self.decoder(
            prev, encoder_out, incremental_state=self._incremental_state,
            refresh_encoder_cache=refresh_encoder, attention_layer=self.attention_layer,
        )  # fmt: skip
        if self.attention_layer is not None:
            self.attention = extra["attn"][0][0, -1, n_hidden:]
        scores = logits[0, -1].float()
        scores[self.pad] = -math.inf
        if self.n_written == 0:
            scores[self.eos] = -math.inf
        return int(scores.argmax())

    def commit(self, token: int) -> str:
        """Accept the predicted ``token``; return its SentencePiece piece."""
        self.tokens.append(token)
        self._snapshot = None
        return self.dictionary[token]

    def mark(self) -> tuple[list[int], State]:
        """The committed hypothesis and its decoder state, for :meth:`restore` after tentative
        predictions (local agreement)."""
        return list(self.tokens), _copied(self._incremental_state)

    def restore(self, mark: tuple[list[int], State]) -> None:
        """Back to :meth:`mark`'s hypothesis and decoder state."""
        tokens, state = mark
        self.tokens = list(tokens)
        self._incremental_state = _copied(state)
        self._snapshot = None

    def rollback(self) -> None:
        """Forget the last prediction's decoder state, to predict the same position again."""
        if self._snapshot is None:
            raise RuntimeError("rollback() without a prediction to take back")
        self._incremental_state = self._snapshot
        self._snapshot = None


def _copied(state: State) -> State:
    """A copy of a decoder's incremental state that later predictions do not change: a shallow
    one suffices, since the caches are views that are extended, never written below their length
    (``models/_kv_cache.py``)."""
    return {key: dict(value) for key, value in state.items()}
