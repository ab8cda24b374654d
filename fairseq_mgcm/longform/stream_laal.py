"""StreamLAAL: the latency of a long-form run, sentence by sentence after re-segmentation.

Papi et al. (2024, "StreamAtt", ACL) define it as the mean over reference sentences of LAAL
(Length-Adaptive Average Lagging: Papi et al., 2022; Polák et al., 2022) computed on the words
the mWER re-segmentation gave that sentence, each word's delay measured from the sentence's own
start in the talk. For a sentence of duration ``D`` starting at ``O``, with ``n`` aligned words
written at ``t_1 <= ... <= t_n`` (talk time) and a reference of ``m`` words::

    d_i   = t_i - O                          delay from the sentence's start
    gamma = max(n, m) / D                    words per ms the ideal system writes
    tau   = the first i with d_i >= D, else n   (words written before the sentence ended)
    LAAL  = (1 / tau) * sum_{i=1..tau} (d_i - (i - 1) / gamma)

(If the first word comes after the sentence ended, ``tau`` is 1 and LAAL is ``d_1``.) Taking
``max(n, m)`` rather than ``m`` keeps an over-long hypothesis from lowering its own latency.
A sentence with no aligned word has no delay to measure: it is left out of the mean, as in
simulstream's ``stream_laal`` scorer (its quality loss shows in BLEU instead). The
computation-aware variant uses each word's ``elapsed`` time in place of its delay: SimulEval's,
the source time plus all the wall-clock time spent on the talk so far (simulstream's server
adds each chunk's own computing time instead, so only the plain values compare). Units are
those of the delays: ms here.
"""
from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence

from fairseq_mgcm.longform.resegment import AlignedSentence

__all__ = ["sentence_laal", "stream_laal"]


def sentence_laal(delays: Sequence[float], duration: float, reference_length: int) -> float:
    """LAAL of one sentence: ``delays`` from its start, ``duration`` in the same unit."""
    if not delays:
        raise ValueError("LAAL of a sentence without words")
    if duration <= 0:
        raise ValueError(f"LAAL of a sentence of duration {duration}")
    gamma = max(len(delays), reference_length) / duration
    total, tau = 0.0, 0
    for i, delay in enumerate(delays):
        total += delay - i / gamma
        tau = i + 1
        if delay >= duration:
            break
    return total / tau


def stream_laal(sentences: Iterable[AlignedSentence], computation_aware: bool = False) -> float:
    """The mean LAAL of the sentences with at least one aligned word (ms); NaN when none has."""
    scores = []
    for sentence in sentences:
        times = sentence.elapsed if computation_aware else sentence.delays
        if not times:
            continue
        start = sentence.reference.offset_ms
        scores.append(sentence_laal([t - start for t in times], sentence.reference.duration_ms,
                                    len(sentence.reference.text.split())))
    return statistics.fmean(scores) if scores else math.nan
