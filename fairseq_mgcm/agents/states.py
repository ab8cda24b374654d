"""Per-sentence state of the wait-k agent: SimulEval's ``AgentStates`` plus streaming caches.

SimulEval resets the agent's states at every new sentence; here that one reset also clears the
feature extractor's carried-over samples, the encoder cache, the decoder's incremental state and
the word in progress, so no sentence can leak into the next.

On a whole talk (``--longform``, ``longform.py``) one SimulEval instance holds many sentences:
:meth:`WaitkStates.start_next_sentence` does the same clearing at each predicted sentence end,
but carries the audio after the boundary over to the new sentence, and the samples the agent
has read are dropped from SimulEval's source list, so nothing grows with the talk.
"""
from __future__ import annotations

import logging

import numpy as np
import torch
from simuleval.agents.states import AgentStates
from torch import Tensor

from fairseq_mgcm.agents.checkpoint import LoadedModel
from fairseq_mgcm.agents.decoding import GreedyDecoder
from fairseq_mgcm.agents.longform import FeatureTail, LongformPolicy, ms_to_states
from fairseq_mgcm.agents.online_fbank import OnlineFbank
from fairseq_mgcm.agents.resample import StreamingResampler
from fairseq_mgcm.agents.streaming_encoder import StreamingEncoder
from fairseq_mgcm.agents.words import WordAssembler
from fairseq_mgcm.data.audio import downmix, downmix_warning

logger = logging.getLogger(__name__)

# --longform: less speech than this (fbank frames, 10 ms each) before a pause is not a sentence
MIN_SENTENCE_FRAMES = 30


class WaitkStates(AgentStates):
    """Source samples (mono) -> fbank -> CMVN -> encoder states; decoder and word assembly."""

    def __init__(self, loaded: LoadedModel, longform: LongformPolicy | None = None,
                 attention_layer: int | None = None) -> None:
        """``attention_layer``: the decoder layer whose encoder attention each prediction
        records (AlignAtt, EDAtt)."""
        self.loaded = loaded
        self.longform = longform
        self.fbank = OnlineFbank(loaded.num_mel_bins, loaded.sample_rate)
        self.encoder = StreamingEncoder(loaded.model.encoder)
        self.decoder = GreedyDecoder(loaded.model.decoder, loaded.tgt_dict, attention_layer)
        self.words = WordAssembler()
        self.fbank_frames_per_state = 2 ** len(loaded.model.encoder.subsample.conv_layers)
        super().__init__()  # calls reset()

    def reset(self) -> None:
        super().reset()
        self.n_samples_read = 0
        self._downmixed = False  # multi-channel samples came (warned once per sentence)
        self.resampler: StreamingResampler | None = None
        self.fbank.reset()
        self.encoder.reset()
        self.decoder.reset()
        self.words.reset()
        self._encoder_rewrote = False  # encoder states changed that the decoder may have cached
        self._refreshed = False
        # After the decoder ended the sentence before the source had, it is asked again only
        # once this many encoder states exist: on the same states it would end it again.
        self.retry_at = 0
        self._clear_policy_state()
        # --longform: this sentence's fbank frames (to restart the encoder after a boundary;
        # the speech-onset threshold is in CMVN units: no onset gate without CMVN), the encoder
        # states at its start that are only left context, and the sentences ended so far
        longform = self.longform
        gate = None if longform is None or self.loaded.cmvn is None else longform.silence_below
        self.tail = FeatureTail(gate)
        self.context_states = 0
        self.n_sentences = 0
        self.pause_closed = False  # a pause ended this sentence's source (--longform)

    @property
    def sentence_closed(self) -> bool:
        """No more source for the current sentence: the talk has ended, or a pause closed it."""
        return self.source_finished or self.pause_closed

    def close_sentence_at_pause(self) -> None:
        """Long-form: after ``pause_ends_sentence_ms`` of quiet frames that followed speech, the
        current sentence's source ends here (as a training utterance ends after its speech)."""
        assert self.longform is not None
        limit = self.longform.pause_frames
        if self.pause_closed or limit is None or self.tail.trailing_quiet < limit:
            return
        n_speech = self.tail.n_frames - self.tail.trailing_quiet
        if n_speech <= 0:
            return  # no speech in this sentence yet
        if n_speech < MIN_SENTENCE_FRAMES and self.decoder.n_written == 0:
            # a fragment (the last sound of a sentence the decoder ended a moment early, a
            # click): too short to be a sentence; translating it would make words up
            self.start_next_sentence(self.encoder.n_frames)
            return
        self.pause_closed = True
        # the sentence's source ends where its speech ended: re-encode without the pause
        # (complete chunks give the same states; the decoder re-reads them all)
        self.encoder.reset()
        self.encoder.push(self.tail.frames()[:n_speech], finished=True)
        self._encoder_rewrote = True

    @property
    def sentence_states(self) -> int:
        """Encoder states of the current sentence, its left context (``--history context``)
        excluded: what the wait-k schedule counts."""
        return self.encoder.n_frames - self.context_states

    def _model_rate_samples(self, samples: Tensor) -> Tensor:
        """Resample to the training sample rate when SimulEval's audio has another rate."""
        rate = self.source_sample_rate
        if not samples.numel() and not self.source_finished:
            return samples
        if rate in (0, self.loaded.sample_rate):  # 0: no speech segment arrived at all
            return samples
        if self.resampler is None:
            logger.warning(
                "audio at %d Hz, model trained at %d Hz: resampling on the fly",
                rate, self.loaded.sample_rate,
            )  # fmt: skip
            self.resampler = StreamingResampler(rate, self.loaded.sample_rate)
        return self.resampler.push(samples, finished=self.source_finished)

    def encode_new_source(self) -> None:
        """Turn the samples that arrived since the last call into encoder states."""
        # via numpy: a third of the time of torch.tensor on SimulEval's list of floats
        samples = np.asarray(self.source[self.n_samples_read :], dtype=np.float32)
        if samples.ndim == 2:  # [left, right] pairs: a stereo wav read by another dataloader
            if not self._downmixed:
                logger.warning(downmix_warning("this sentence's source audio", samples.shape[1]))
            self._downmixed = True
            samples = downmix(samples)  # as agents/mono_source.py and preparation do
        new = torch.from_numpy(samples)
        self.n_samples_read = len(self.source)
        if self.longform is not None:  # a talk: keep only what is still to be read
            del self.source[:]
            self.n_samples_read = 0
        frames = self.fbank.push(self._model_rate_samples(new))
        if self.loaded.cmvn is not None and frames.shape[0] > 0:
            frames = self.loaded.cmvn(frames)
        if self.longform is not None:
            frames = self.tail.append(frames)
        self.encoder.push(frames, finished=self.source_finished)
        self._encoder_rewrote = self._encoder_rewrote or self.encoder.rewrote_prefix

    def predict_next(self) -> int:
        """The decoder's greedy next token over all encoder states so far (left context of a
        long-form sentence excluded)."""
        token = self.decoder.predict(self.encoder.states, self._encoder_rewrote,
                                     n_hidden=self.context_states)
        self._refreshed, self._encoder_rewrote = self._encoder_rewrote, False
        return token

    def commit(self, token: int) -> str:
        """Accept the predicted token; return its SentencePiece piece."""
        return self.decoder.commit(token)

    def take_back(self, wait_states: int) -> None:
        """Undo the last prediction, an end of sentence that came before the end of the source
        (its decoder state may predate an encoder rewrite), and predict again only once
        ``wait_states`` more encoder states have arrived (:attr:`retry_at`)."""
        self.decoder.rollback()
        self.retry_at = self.encoder.n_frames + wait_states
        self._encoder_rewrote = self._encoder_rewrote or self._refreshed

    def _clear_policy_state(self) -> None:
        # AlignAtt/EDAtt: the encoder states there were when the rule last refused a token
        # (asked again only with more); local agreement: the states of the last hypothesis
        # and the hypotheses so far
        self.refused_at = -1
        self.hypothesis_at = -1
        self.hypotheses: list[list[int]] = []

    def refuse(self) -> None:
        """The policy's rule refused the predicted token: take it back, and predict again only
        when more encoder states have arrived."""
        self.decoder.rollback()
        self.refused_at = self.encoder.n_frames
        self._encoder_rewrote = self._encoder_rewrote or self._refreshed

    def hypothesis(self, max_tokens: int) -> list[int]:
        """The greedy hypothesis on the states so far (committed tokens, then tentative ones up
        to the first end of sentence or ``max_tokens`` tokens), the decoder then put back to
        its committed tokens (local agreement)."""
        mark = self.decoder.mark()
        rewrote = self._encoder_rewrote
        while self.decoder.n_written < max_tokens:
            token = self.predict_next()
            if token == self.decoder.eos:
                break
            self.decoder.commit(token)
        tokens = self.decoder.tokens[1:]
        self.decoder.restore(mark)
        self._encoder_rewrote = rewrote  # the restored encoder-side cache predates any refresh
        return tokens

    def start_next_sentence(self, boundary: int) -> None:
        """Long-form: the current sentence ends at encoder state ``boundary``; the next one
        starts there, on a fresh encoder stream and an empty hypothesis (the caller has written
        this sentence's words).

        The encoder re-reads the fbank frames from the boundary (minus the ``context``
        strategy's left context) from :attr:`tail`, which then forgets everything before them.
        """
        assert self.longform is not None, "start_next_sentence is for --longform"
        per_state = self.fbank_frames_per_state
        context = 0
        if self.longform.keeps_context:
            context = min(boundary, ms_to_states(self.longform.context_ms, per_state))
        first_state = boundary - context
        # the tail starts where the current encoder stream started
        kept = self.tail.drop_before(first_state * per_state, context * per_state)
        self.encoder.reset()
        self.decoder.reset()
        self.words.reset()
        self._encoder_rewrote = self._refreshed = False
        self.retry_at = 0
        self._clear_policy_state()
        self.pause_closed = False
        self.n_sentences += 1
        frames = kept[0] if kept else torch.zeros(0, self.loaded.num_mel_bins)
        self.encoder.push(frames, finished=self.source_finished)
        self.context_states = context  # the stream's first states, now or when they come
