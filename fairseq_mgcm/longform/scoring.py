"""Score one long-form run: its talks' streams against their reference sentences.

Each talk's stream is re-segmented to its own sentences (``resegment``), then BLEU and chrF
are taken over every sentence of every talk (``quality``), and StreamLAAL over the sentences
that got words (``stream_laal``), plain and computation-aware. The re-segmented hypotheses are
written beside the run's log (``resegmented.txt``, line-aligned with the talks'
``sentences.txt``) so that a reader can see what each sentence was scored on.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from fairseq_mgcm.atomic_files import write_lines
from fairseq_mgcm.errors import BadValue
from fairseq_mgcm.longform.instances import Stream, read_streams
from fairseq_mgcm.longform.quality import quality_scores
from fairseq_mgcm.longform.resegment import AlignedSentence, resegment
from fairseq_mgcm.longform.stream_laal import stream_laal
from fairseq_mgcm.longform.talks import Talk

__all__ = ["COLUMNS", "RunScores", "score_log", "score_streams"]

COLUMNS = ("BLEU", "chrF", "StreamLAAL", "StreamLAAL_CA", "n_talks", "n_sentences",
           "hyp_words", "ref_words")
RESEGMENTED = "resegmented.txt"


@dataclass(frozen=True)
class RunScores:
    """A run's long-form scores (latencies in ms) and the sentences they were computed on."""

    bleu: float
    chrf: float
    stream_laal: float
    stream_laal_ca: float
    signature: str
    sentences: tuple[AlignedSentence, ...]
    n_talks: int

    def row(self) -> dict[str, float]:
        """The scores as a results-table row (``COLUMNS``; the counts are ints)."""
        return {
            "BLEU": self.bleu, "chrF": self.chrf, "StreamLAAL": self.stream_laal,
            "StreamLAAL_CA": self.stream_laal_ca, "n_talks": self.n_talks,
            "n_sentences": len(self.sentences),
            "hyp_words": sum(len(s.words) for s in self.sentences),
            "ref_words": sum(len(s.reference.text.split()) for s in self.sentences),
        }  # fmt: skip


def score_streams(talks: Sequence[Talk], streams: Sequence[Stream], tokenize: str = "13a"
                  ) -> RunScores:
    """Scores of ``streams[i]`` against ``talks[i]``; a run limited to its first talks
    (``--max-instances``) is scored on those talks."""
    if len(streams) > len(talks):
        raise BadValue(f"{len(streams)} streams but {len(talks)} talks: the log is not of "
                       f"these talks")
    sentences: list[AlignedSentence] = []
    for talk, stream in zip(talks, streams):
        sentences += resegment(talk, stream)
    bleu, chrf, signature = quality_scores(sentences, tokenize)
    return RunScores(bleu, chrf, stream_laal(sentences), stream_laal(sentences, True), signature,
                     tuple(sentences), len(streams))


def score_log(talks: Sequence[Talk], log: Path, tokenize: str = "13a") -> RunScores:
    """Score the SimulEval ``log`` of a long-form run and write ``resegmented.txt`` beside it
    (only when it changed: a re-scored run leaves it untouched)."""
    streams = read_streams(log)
    try:
        scores = score_streams(talks, streams, tokenize)
    except BadValue as error:
        raise BadValue(f"{log}: {error}") from None
    write_lines(Path(log).parent / RESEGMENTED, [s.hypothesis for s in scores.sentences],
                if_changed=True)
    return scores
