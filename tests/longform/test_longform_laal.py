"""StreamLAAL on hand-made talks whose alignment is known, every value computed by hand, and the
same inputs through simulstream's own ``stream_laal`` scorer."""
from __future__ import annotations

import argparse
import math

import pytest

from fairseq_mgcm.longform.instances import Stream
from fairseq_mgcm.longform.resegment import AlignedSentence, resegment
from fairseq_mgcm.longform.stream_laal import sentence_laal, stream_laal
from fairseq_mgcm.longform.talks import Sentence, Talk

pytest.importorskip("mweralign")  # re-segmentation (requirements.lock)

# Two sentences: "ich bin hier" spoken from 1.0 s for 2.0 s, "das ist gut" from 4.0 s for 1.0 s.
TALK = Talk("t1", "wav/t1.wav", (Sentence("ich bin hier", 1.0, 2.0),
                                  Sentence("das ist gut", 4.0, 1.0)))
# The hypothesis is the reference itself, so the cut is after the third word whatever the
# aligner; delays and elapsed times in ms from the start of the talk.
STREAM = Stream(("ich", "bin", "hier", "das", "ist", "gut"),
                (1500.0, 2000.0, 3500.0, 4200.0, 4800.0, 5500.0),
                (1600.0, 2200.0, 3900.0, 4500.0, 5200.0, 6000.0))


def _aligned(sentence: Sentence, delays: list[float], elapsed: list[float] | None = None
             ) -> AlignedSentence:
    words = tuple(sentence.text.split())[:len(delays)]
    return AlignedSentence(sentence, words, tuple(delays), tuple(elapsed or delays))


def test_sentence_laal_by_hand():
    # sentence 1: d = 500, 1000, 2500 from its start; D = 2000 ms; gamma = 3 / 2000, so the
    # ideal writes a word every 666.67 ms; tau = 3 (2500 >= D):
    # (500 - 0 + 1000 - 666.67 + 2500 - 1333.33) / 3 = 2000 / 3 = 666.67
    assert sentence_laal([500, 1000, 2500], 2000, 3) == pytest.approx(2000 / 3)
    # the words after the first one at or past the end of the sentence do not count: tau = 2
    # (1200 >= 1000): (500 + 1200 - 333.33) / 2 = 683.33
    assert sentence_laal([500, 1200, 2000], 1000, 3) == pytest.approx(2050 / 3)
    # a first word after the end of the sentence: its delay
    assert sentence_laal([2500, 2600], 2000, 3) == 2500
    # a hypothesis longer than the reference: gamma = max(4, 2) / 1000 (a word per 250 ms):
    # (100 + 350 - 250 + 600 - 500 + 900 - 750) / 4 = 450 / 4
    assert sentence_laal([100, 350, 600, 900], 1000, 2) == pytest.approx(112.5)


def test_stream_laal_measures_each_sentence_from_its_own_start():
    aligned = resegment(TALK, STREAM)
    assert [s.words for s in aligned] == [("ich", "bin", "hier"), ("das", "ist", "gut")]
    assert aligned[1].delays == (4200.0, 4800.0, 5500.0)
    # sentence 1: 2000 / 3 (above); sentence 2 from 4000 ms: d = 200, 800, 1500, D = 1000,
    # a word per 333.33 ms, tau = 3: (200 + 800 - 333.33 + 1500 - 666.67) / 3 = 500
    assert stream_laal(aligned) == pytest.approx((2000 / 3 + 500) / 2)  # 583.33
    # computation-aware, from elapsed: sentence 1 d = 600, 1200, 2900:
    # (600 + 1200 - 666.67 + 2900 - 1333.33) / 3 = 900; sentence 2 d = 500, 1200 (>= 1000:
    # tau = 2), (500 + 1200 - 333.33) / 2 = 683.33
    assert stream_laal(aligned, computation_aware=True) == pytest.approx((900 + 2050 / 3) / 2)


def test_sentences_without_words_are_left_out_of_the_mean():
    first, second = TALK.sentences
    aligned = [_aligned(first, [1500, 2000, 3500]), _aligned(second, [])]
    assert stream_laal(aligned) == pytest.approx(2000 / 3)
    assert math.isnan(stream_laal([_aligned(second, [])]))


def test_an_empty_stream_gives_every_sentence_no_words():
    aligned = resegment(TALK, Stream((), (), ()))
    assert [s.words for s in aligned] == [(), ()]
    assert math.isnan(stream_laal(aligned))


@pytest.fixture(scope="module")
def simulstream_laal():
    pytest.importorskip("simulstream")
    from simulstream.metrics.readers import OutputWithDelays, ReferenceSentenceDefinition
    from simulstream.metrics.scorers.latency import LatencyScoringSample
    from simulstream.metrics.scorers.latency.stream_laal import StreamLaal

    def score(talks: list[Talk], streams: list[Stream]) -> tuple[float, float]:
        """simulstream's (StreamLAAL, computation-aware StreamLAAL) in ms: it works in seconds."""
        samples = [LatencyScoringSample(
            talk.name,
            OutputWithDelays(" ".join(stream.words), [d / 1000 for d in stream.delays],
                             [e / 1000 for e in stream.elapsed]),
            [ReferenceSentenceDefinition(s.text, s.offset, s.duration) for s in talk.sentences],
        ) for talk, stream in zip(talks, streams)]
        scores = StreamLaal(argparse.Namespace(latency_unit="word")).score(samples)
        return scores.ideal_latency * 1000, scores.computational_aware_latency * 1000

    return score


def _ours(talks: list[Talk], streams: list[Stream]) -> tuple[float, float]:
    aligned = [s for talk, stream in zip(talks, streams) for s in resegment(talk, stream)]
    return stream_laal(aligned), stream_laal(aligned, computation_aware=True)


def test_equal_to_simulstream_on_the_hand_made_talk(simulstream_laal):
    assert _ours([TALK], [STREAM]) == pytest.approx(simulstream_laal([TALK], [STREAM]))


def test_equal_to_simulstream_on_its_own_example(simulstream_laal):
    """simulstream's unit test (uts/metrics/test_stream_laal.py): a real Italian talk excerpt,
    hypothesis shorter than the references, whose StreamLAAL it asserts as 0.8686 s (5.86 s
    computation-aware)."""
    talk = Talk("a", "wav/a.wav", (
        Sentence("A New York, sono a capo di un'associazione no profit, chiamata Robin Hood.",
                 12.61, 4.07),
        Sentence("Quando non combatto la povertà, combatto gli incendi come assistente capitano "
                 "di una brigata di pompieri volontari.", 16.9, 5.14)))
    words = ("Tornando a New York, sono il capo dello sviluppo per un non-profit chiamato Robin "
             "Hood. Quando non sto combattendo la povertà, sto combattendo i fuochi.").split()
    delays = [14.0] * 4 + [16.0] * 9 + [18.0] * 8 + [20.0] * 4
    elapsed = [18.22] * 4 + [19.93] * 9 + [23.01] * 8 + [27.30] * 4
    stream = Stream(tuple(words), tuple(d * 1000 for d in delays),
                    tuple(e * 1000 for e in elapsed))
    ours = _ours([talk], [stream])
    assert ours == pytest.approx(simulstream_laal([talk], [stream]))
    assert ours == pytest.approx((868.587, 5860.0), abs=0.1)
