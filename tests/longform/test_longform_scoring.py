"""A long-form run's scores from its SimulEval log: the streams read back, re-segmented to each
talk's sentences, BLEU and chrF equal to sacrebleu's on the known cut and to simulstream's own
``sacrebleu`` scorer on the same inputs."""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import pytest
from longform_testing import load_simulstream_quality
from sacrebleu.metrics.bleu import BLEU
from sacrebleu.metrics.chrf import CHRF

from fairseq_mgcm.errors import BadValue
from fairseq_mgcm.longform.instances import Stream, read_streams
from fairseq_mgcm.longform.scoring import score_log, score_streams
from fairseq_mgcm.longform.talks import Sentence, Talk

pytest.importorskip("mweralign")  # re-segmentation (requirements.lock)

TALKS = [
    Talk("ted_1", "wav/ted_1.wav", (Sentence("ich sehe einen hund .", 0.5, 2.0),
                                    Sentence("er ist sehr groß .", 3.0, 1.5),
                                    Sentence("wir gehen nach hause .", 5.0, 2.0))),
    Talk("ted_2", "wav/ted_2.wav", (Sentence("das buch ist gut .", 0.2, 1.8),
                                    Sentence("sie liest es heute .", 2.5, 2.0))),
]
# Hypotheses close to the references, with one word wrong or missing per sentence, so that
# the minimum-WER cut is the sentence boundaries.
HYPOTHESES = ["ich sehe einen hund . er ist groß . wir gehen nach haus .",
              "das buch ist schön . sie liest es ."]
CUT = [["ich sehe einen hund .", "er ist groß .", "wir gehen nach haus ."],
       ["das buch ist schön .", "sie liest es ."]]


def _stream(text: str, start: float) -> Stream:
    words = tuple(text.split())
    delays = tuple(start + 400.0 * i for i in range(len(words)))
    return Stream(words, delays, tuple(d + 50.0 for d in delays))


STREAMS = [_stream(HYPOTHESES[0], 1000.0), _stream(HYPOTHESES[1], 600.0)]


def _log(path: Path, streams: list[Stream], order: list[int] | None = None) -> Path:
    """An instances.log as SimulEval writes it (one JSON object per talk)."""
    lines = []
    for i in order or range(len(streams)):
        s = streams[i]
        lines.append(json.dumps({
            "index": i, "prediction": " ".join(s.words), "delays": list(s.delays),
            "elapsed": list(s.elapsed), "prediction_length": len(s.words),
            "reference": TALKS[i].reference, "source": [f"wav/{TALKS[i].name}.wav"],
            "source_length": 8000.0}))
    path.write_text("".join(line + "\n" for line in lines))
    return path


def test_streams_are_read_back_by_instance_index(tmp_path):
    log = _log(tmp_path / "instances.log", STREAMS, order=[1, 0])
    assert read_streams(log) == STREAMS


def test_the_cut_and_the_corpus_scores(tmp_path):
    scores = score_log(TALKS, _log(tmp_path / "instances.log", STREAMS))
    assert [s.hypothesis for s in scores.sentences] == [line for cut in CUT for line in cut]
    references = [[s.text for talk in TALKS for s in talk.sentences]]
    hypotheses = [line for cut in CUT for line in cut]
    assert scores.bleu == BLEU().corpus_score(hypotheses, references).score
    assert scores.chrf == CHRF().corpus_score(hypotheses, references).score
    assert scores.row()["n_sentences"] == 5 and scores.row()["hyp_words"] == 14 + 9
    assert scores.row()["ref_words"] == 25
    # the re-segmented hypotheses beside the log, line-aligned with the talks' sentences
    assert (tmp_path / "resegmented.txt").read_text().splitlines() == hypotheses
    # the delays follow their words: "er" is word 6 of talk 1, written at 1000 + 5 * 400 ms
    assert scores.sentences[1].delays[0] == 3000.0


def test_a_run_of_the_first_talks_is_scored_on_those_talks():
    assert score_streams(TALKS, STREAMS[:1]).row()["n_talks"] == 1
    with pytest.raises(BadValue, match="3 streams but 2 talks"):
        score_streams(TALKS, [*STREAMS, STREAMS[0]])


def test_a_torn_log_names_its_line(tmp_path):
    log = _log(tmp_path / "instances.log", STREAMS)
    log.write_text(log.read_text()[:-20])
    with pytest.raises(BadValue, match=r"instances.log:2: not JSON"):
        read_streams(log)
    record = {"index": 0, "prediction": "a b", "delays": [1.0], "elapsed": [1.0, 2.0]}
    log.write_text(json.dumps(record) + "\n")
    with pytest.raises(BadValue, match=r"instances.log:1: 2 words but 1 delays"):
        read_streams(log)
    log.write_text("")
    with pytest.raises(BadValue, match="wrote no instance"):
        read_streams(log)


@pytest.fixture
def simulstream_bleu(monkeypatch):
    """simulstream's ``sacrebleu`` quality scorer. Its package imports every scorer on import,
    COMET's too, which needs numpy<2 and is not installed: a stand-in ``comet`` module lets
    the package load (the COMET scorer itself is never built)."""
    pytest.importorskip("simulstream")
    load_simulstream_quality(monkeypatch)
    from simulstream.metrics.scorers.quality import QualityScoringSample
    from simulstream.metrics.scorers.quality.sacrebleu import SacreBLEUScorer

    def score(talks: list[Talk], streams: list[Stream]) -> float:
        scorer = SacreBLEUScorer(argparse.Namespace(tokenizer="13a", latency_unit="word"))
        return scorer.score([QualityScoringSample(t.name, " ".join(s.words),
                                                  [x.text for x in t.sentences])
                             for t, s in zip(talks, streams)])

    return score


def test_bleu_equals_simulstreams_scorer(simulstream_bleu):
    assert score_streams(TALKS, STREAMS).bleu == pytest.approx(simulstream_bleu(TALKS, STREAMS))


def test_no_words_at_all_scores_zero_and_no_latency():
    empty = [Stream((), (), ()), Stream((), (), ())]
    scores = score_streams(TALKS, empty)
    assert scores.bleu == 0.0 and math.isnan(scores.stream_laal)
    assert scores.row()["hyp_words"] == 0
