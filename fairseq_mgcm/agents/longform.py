"""Streaming a whole talk with a model trained on sentences: where one sentence ends and the
next begins, and how much of the past the agent keeps.

A segment-trained decoder translates one sentence and then predicts end-of-sentence. On an
unsegmented talk that prediction is the sentence boundary: the agent writes the sentence's last
word, then starts a new hypothesis on the audio that follows, with a fresh encoder stream and an
empty decoder, so every sentence looks to the model like the utterances it was trained on. The
past is forgotten at each boundary: the encoder's key/value caches, the decoder's state and the
feature frames of earlier sentences. Memory and the cost of a chunk therefore depend on the
length of the current sentence, never on the length of the talk. A sentence that runs past
``max_sentence_ms`` without an end-of-sentence (a long silence, a run-on) is cut there, keeping
its last k read steps for the next sentence, so that bound holds whatever the talk contains.

Two history strategies (``--history``):

- ``reset``: the next sentence's encoder starts at the boundary, as a training utterance does.
- ``context``: the next sentence's encoder also re-reads ``context_ms`` of audio before the
  boundary, so its first chunks are encoded with acoustic left context; the decoder does not
  attend to those context states and the wait-k schedule does not count them.

Where the next sentence starts: a wait-k decoder writes the end of a sentence k read steps
after hearing it, so by the time it predicts end-of-sentence the next sentence may already have
begun; starting there would drop its first words. The boundary is therefore the end of the last
pause (``min_pause_ms`` of frames below the speech-onset threshold) within the audio the decoder
read in its last k + 1 read steps, or the point of the prediction when there is none (or no
CMVN to measure pauses with). Each new sentence then starts at its speech onset (below).
"""
from __future__ import annotations

from argparse import ArgumentParser, Namespace
from dataclasses import dataclass

import torch
from torch import Tensor

from fairseq_mgcm.agents.read_step import FRAME_SHIFT_MS
from fairseq_mgcm.errors import BadValue

HISTORIES = ("reset", "context")


@dataclass(frozen=True)
class LongformPolicy:
    """How the agent moves from one sentence of a talk to the next (all lengths in ms)."""

    history: str = "reset"
    context_ms: int = 1000
    min_pause_ms: int = 150
    max_sentence_ms: int = 20000
    silence_below: float | None = -1.5
    pause_ends_sentence_ms: int | None = 200

    @property
    def pause_frames(self) -> int | None:
        """Quiet fbank frames that end a sentence (None: only the decoder ends sentences)."""
        if self.pause_ends_sentence_ms is None or self.silence_below is None:
            return None
        return -(-self.pause_ends_sentence_ms // FRAME_SHIFT_MS)

    def __post_init__(self) -> None:
        if self.history not in HISTORIES:
            raise BadValue(f"--history {self.history}: choose one of {', '.join(HISTORIES)}")
        for flag, value in (("--history-context-ms", self.context_ms),
                            ("--min-pause-ms", self.min_pause_ms)):
            if value < 0:
                raise BadValue(f"{flag} {value}: must be >= 0")
        if self.max_sentence_ms <= 0:
            raise BadValue(f"--max-sentence-ms {self.max_sentence_ms}: must be > 0")

    @classmethod
    def from_args(cls, args: Namespace) -> LongformPolicy | None:
        """The policy the agent's flags ask for, or None for sentence-level input."""
        if not getattr(args, "longform", False):
            return None
        defaults = cls()
        return cls(
            history=getattr(args, "history", defaults.history),
            context_ms=getattr(args, "history_context_ms", defaults.context_ms),
            min_pause_ms=getattr(args, "min_pause_ms", defaults.min_pause_ms),
            max_sentence_ms=getattr(args, "max_sentence_ms", defaults.max_sentence_ms),
            silence_below=getattr(args, "silence_below", defaults.silence_below),
            pause_ends_sentence_ms=getattr(args, "pause_ends_sentence_ms",
                                           defaults.pause_ends_sentence_ms),
        )  # fmt: skip

    @property
    def keeps_context(self) -> bool:
        return self.history == "context"

    @staticmethod
    def add_args(parser: ArgumentParser) -> None:
        defaults = LongformPolicy()
        parser.add_argument(
            "--longform", action="store_true",
            help="the source is a whole talk: keep translating after each end of sentence, "
            "starting the next sentence on the audio that follows (docs/longform.md)",
        )  # fmt: skip
        parser.add_argument(
            "--history", choices=HISTORIES, default=defaults.history,
            help="--longform: what the next sentence's encoder re-reads (reset: nothing; "
            "context: --history-context-ms of audio before the boundary)",
        )  # fmt: skip
        parser.add_argument("--history-context-ms", type=int, default=defaults.context_ms,
                            help="--history context: audio left context in ms")
        parser.add_argument(
            "--min-pause-ms", type=int, default=defaults.min_pause_ms,
            help="--longform: the next sentence starts after the last pause this long that "
            "the decoder read before ending the sentence",
        )  # fmt: skip
        parser.add_argument(
            "--max-sentence-ms", type=int, default=defaults.max_sentence_ms,
            help="--longform: cut a sentence without end-of-sentence after this much audio",
        )  # fmt: skip
        parser.add_argument(
            "--pause-ends-sentence-ms", type=_int_or_none,
            default=defaults.pause_ends_sentence_ms,
            help="--longform: a pause this long after speech ends the sentence's source, as "
            "the end of a training utterance does (none: only end-of-sentence predictions)",
        )  # fmt: skip
        parser.add_argument(
            "--silence-below", type=_float_or_none, default=defaults.silence_below,
            help="--longform: a sentence starts at the first frame whose mean normalised "
            "log-mel energy reaches this (none: at the boundary itself)",
        )  # fmt: skip


def _float_or_none(text: str) -> float | None:
    return None if text.lower() == "none" else float(text)


def _int_or_none(text: str) -> int | None:
    return None if text.lower() == "none" else int(text)


class FeatureTail:
    """The fbank frames (CMVN applied) of the current sentence and its left context.

    A new sentence's encoder stream restarts from these frames; frames before the kept context
    are dropped at each boundary, so the tail never holds more than one sentence's audio. A
    boundary may lie a frame or two past the frames computed so far (the fbank window is 25 ms
    long): those frames are dropped when they arrive.

    Speech onset: a training utterance starts where its speech starts, so a sentence that
    started on the pause before it would be a kind of input the model never saw. Until a frame
    louder than ``silence_below`` arrives (the mean over mel bins of CMVN-normalised log-mel
    energy: about -2.4 for the demo corpus's pauses, about 0 for speech), a new sentence's
    frames are dropped; None keeps every frame.
    """

    def __init__(self, silence_below: float | None = None) -> None:
        self.silence_below = silence_below
        self._chunks: list[Tensor] = []
        self.n_frames = 0
        self._skip = 0
        self.awaiting_speech = silence_below is not None
        self.n_silent_dropped = 0
        self.trailing_quiet = 0  # quiet frames at the end of the tail

    def append(self, frames: Tensor) -> Tensor:
        """Add newly computed frames; return those that belong to the current stream."""
        if self._skip:
            skipped = min(self._skip, frames.shape[0])
            frames, self._skip = frames[skipped:], self._skip - skipped
        frames = self._from_speech_onset(frames)
        if frames.shape[0]:
            self._chunks.append(frames)
            self.n_frames += frames.shape[0]
            self._count_trailing_quiet(frames)
        return frames

    def _count_trailing_quiet(self, frames: Tensor) -> None:
        if self.silence_below is None:
            return
        loud = (frames.mean(dim=1) >= self.silence_below).nonzero()
        if loud.numel():
            self.trailing_quiet = frames.shape[0] - 1 - int(loud[-1])
        else:
            self.trailing_quiet += frames.shape[0]

    def _from_speech_onset(self, frames: Tensor) -> Tensor:
        if not self.awaiting_speech or self.silence_below is None or not frames.shape[0]:
            return frames
        loud = (frames.mean(dim=1) >= self.silence_below).nonzero()
        onset = int(loud[0]) if loud.numel() else frames.shape[0]
        self.n_silent_dropped += onset
        self.awaiting_speech = onset == frames.shape[0]
        return frames[onset:]

    def frames(self) -> Tensor:
        """Every frame kept ``[n_frames, bins]``."""
        return torch.cat(self._chunks) if self._chunks else torch.zeros(0, 0)

    def last_pause_end(self, start: int, end: int, min_pause: int) -> int | None:
        """The frame after the last run of at least ``min_pause`` quiet frames in
        ``[start, end)`` (``end`` itself when the run reaches it); None without one (or
        without an onset threshold)."""
        if self.silence_below is None or not self._chunks or end <= start:
            return None
        frames = self.frames()[max(start, 0) : end]
        quiet = (frames.mean(dim=1) < self.silence_below).tolist()
        run = 0
        for i in range(len(quiet) - 1, -1, -1):  # from the end backwards
            run = run + 1 if quiet[i] else 0
            if run >= min_pause:
                j = i + run  # the end of this quiet run: scan on to where it stops
                while j < len(quiet) and quiet[j]:
                    j += 1
                return max(start, 0) + j
        return None

    def drop_before(self, first: int, context: int = 0) -> list[Tensor]:
        """Forget frames ``[0, first)`` (those not computed yet when they come); return the
        frames kept: ``context`` frames as they are, then the new sentence from its speech
        onset."""
        self.awaiting_speech = self.silence_below is not None
        if first >= self.n_frames:
            self._skip += first - self.n_frames
            self._chunks, self.n_frames, self.trailing_quiet = [], 0, 0
            return []
        kept = self.frames()[first:]
        kept = torch.cat([kept[:context], self._from_speech_onset(kept[context:])])
        self._chunks, self.n_frames = ([kept], kept.shape[0]) if kept.shape[0] else ([], 0)
        self.trailing_quiet = 0
        self._count_trailing_quiet(kept)
        return self._chunks


def ms_to_states(ms: int, fbank_frames_per_state: int) -> int:
    """Encoder states that cover ``ms`` of audio (rounded up)."""
    per_state_ms = FRAME_SHIFT_MS * fbank_frames_per_state
    return -(-ms // per_state_ms)
