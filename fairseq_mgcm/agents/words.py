"""Turn a stream of SentencePiece pieces into complete words.

SimulEval scores latency per word and assigns every word in a write the delay of that write, so a
word must be written once, whole. A SentencePiece piece that starts with ``▁`` (U+2581) starts a
new word; the pieces that follow without it continue the same word. A word is therefore known to
be complete only when the next word's first piece arrives, or when the hypothesis ends.
Joining the words with spaces gives what ``spm.decode`` (and fairseq's ``sentencepiece`` BPE
``decode``) gives for the same pieces.
"""
from __future__ import annotations

from collections.abc import Iterable

WORD_START = "\u2581"


class WordAssembler:
    """Accumulates pieces; ``push`` returns the words completed so far, ``flush`` the last one.

    Example::

        words = WordAssembler()
        words.push(["▁Gu", "ten"])   # [] : "Guten" may continue
        words.push(["▁Tag"])         # ["Guten"]
        words.flush()                # ["Tag"]
    """

    def __init__(self) -> None:
        self._partial: list[str] = []

    def reset(self) -> None:
        """Drop the word in progress (a new hypothesis starts)."""
        self._partial = []

    @property
    def partial(self) -> str:
        """The word in progress, not yet known to be complete."""
        return "".join(self._partial).replace(WORD_START, "")

    def push(self, pieces: Iterable[str]) -> list[str]:
        """Add pieces; return the words they complete (possibly none)."""
        words: list[str] = []
        for piece in pieces:
            if piece.startswith(WORD_START) and self._partial:
                words.extend(self._take())
            self._partial.append(piece)
        return words

    def flush(self) -> list[str]:
        """End of hypothesis: return the word in progress, if it has any text."""
        return self._take()

    def _take(self) -> list[str]:
        text = "".join(self._partial).replace(WORD_START, " ")
        self._partial = []
        return text.split()
