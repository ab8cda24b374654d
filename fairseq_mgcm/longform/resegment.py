"""Cut a talk's stream of words into one hypothesis per reference sentence (mWER alignment).

A long-form run writes one stream per talk, with no sentence boundaries that need match the
references'; sentence-level BLEU, chrF and LAAL need one hypothesis per reference sentence.
The minimum-WER re-segmentation (Matusov et al., 2005) chooses the cut points of the stream
that minimise the word error rate against the reference sentences; ``mweralign`` (Post, 2025)
is the maintained implementation, the one simulstream's scorers use, called here the same way
(untokenised text, its default settings). The cut never reorders or changes words, so each
word keeps its delays: the words a sentence gets are the ones whose latency it is charged.
"""
from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from fairseq_mgcm.console import verbose
from fairseq_mgcm.longform.instances import Stream
from fairseq_mgcm.longform.talks import Sentence, Talk

__all__ = ["AlignedSentence", "resegment", "split_counts"]


@dataclass(frozen=True)
class AlignedSentence:
    """A reference sentence and the hypothesis words aligned to it, with their delays and
    computation-aware delays (ms from the start of the talk)."""

    reference: Sentence
    words: tuple[str, ...]
    delays: tuple[float, ...]
    elapsed: tuple[float, ...]

    @property
    def hypothesis(self) -> str:
        return " ".join(self.words)


@contextmanager
def _quiet_stderr() -> Iterator[None]:
    """mweralign's C++ core prints two lines per alignment on the process's stderr (the
    reference's case handling and the talk's mWER): one pair per talk and k would bury the
    stage's own log. They are dropped unless ``MGCM_VERBOSE=1`` (``console.py``)."""
    if verbose():
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def split_counts(references: Sequence[str], words: Sequence[str]) -> list[int]:
    """How many of the hypothesis ``words`` (in order) go to each reference sentence.

    Raises ValueError if the aligner changed the words (it must only place the cuts)."""
    if not words:
        return [0] * len(references)
    from mweralign import align_texts  # its import configures logging: only when aligning

    with _quiet_stderr():
        lines = align_texts("\n".join(references), " ".join(words)).split("\n")
    if len(lines) != len(references):
        raise ValueError(f"mweralign returned {len(lines)} segments for {len(references)} "
                         f"reference sentences")
    pieces = [line.split() for line in lines]
    if [word for piece in pieces for word in piece] != list(words):
        raise ValueError("mweralign changed the hypothesis words while segmenting them")
    return [len(piece) for piece in pieces]


def resegment(talk: Talk, stream: Stream) -> list[AlignedSentence]:
    """One :class:`AlignedSentence` per reference sentence of ``talk``, in time order."""
    try:
        counts = split_counts([s.text for s in talk.sentences], stream.words)
    except ValueError as error:
        raise ValueError(f"talk {talk.name}: {error}") from None
    aligned, start = [], 0
    for sentence, count in zip(talk.sentences, counts):
        end = start + count
        aligned.append(AlignedSentence(sentence, stream.words[start:end],
                                       stream.delays[start:end], stream.elapsed[start:end]))
        start = end
    return aligned
