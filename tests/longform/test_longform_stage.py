"""The long-form stage end to end on the session's tiny model: its test talk (10 sentences, one
wav) streamed whole, and every score equal to simulstream's own scorers on the same log."""
from __future__ import annotations

import argparse
import csv
import logging
from pathlib import Path

import pytest
from docs_commands import command_starting, commands
from longform_testing import check_longform_run, load_simulstream_quality

from fairseq_mgcm.longform.instances import read_streams
from fairseq_mgcm.longform.stage import main
from fairseq_mgcm.longform.talks import read_talks, talks_folder

pytestmark = pytest.mark.slow
pytest.importorskip("mweralign")  # re-segmentation (requirements.lock)
DOC = Path(__file__).resolve().parents[2] / "docs" / "longform.md"


def documented_argv(checkpoint: Path, data: Path, out: Path) -> list[str]:
    """docs/longform.md's stage command, its three paths (the demo's) replaced."""
    words = command_starting(DOC, "python -m fairseq_mgcm.longform.stage")
    paths = {"exp/demo/mgcm/checkpoint_avg.pt": str(checkpoint), "exp/demo/data": str(data),
             "exp/demo/mgcm/longform": str(out)}
    assert set(paths) <= set(words), words
    return [paths.get(word, word) for word in words[3:]]


def _simulstream_scores(talks, streams, monkeypatch) -> tuple[float, float, float]:
    """simulstream's BLEU and (StreamLAAL, computation-aware) in ms on the same inputs."""
    pytest.importorskip("simulstream")
    load_simulstream_quality(monkeypatch)
    from simulstream.metrics.readers import OutputWithDelays, ReferenceSentenceDefinition
    from simulstream.metrics.scorers.latency import LatencyScoringSample
    from simulstream.metrics.scorers.latency.stream_laal import StreamLaal
    from simulstream.metrics.scorers.quality import QualityScoringSample
    from simulstream.metrics.scorers.quality.sacrebleu import SacreBLEUScorer

    args = argparse.Namespace(tokenizer="13a", latency_unit="word")
    bleu = SacreBLEUScorer(args).score([
        QualityScoringSample(t.name, " ".join(s.words), [x.text for x in t.sentences])
        for t, s in zip(talks, streams)])
    laal = StreamLaal(args).score([LatencyScoringSample(
        t.name, OutputWithDelays(" ".join(s.words), [d / 1000 for d in s.delays],
                                 [e / 1000 for e in s.elapsed]),
        [ReferenceSentenceDefinition(x.text, x.offset, x.duration) for x in t.sentences])
        for t, s in zip(talks, streams)])
    return bleu, laal.ideal_latency * 1000, laal.computational_aware_latency * 1000


def test_a_talk_streamed_whole_and_scored_as_simulstream_scores_it(
        trained_tiny, prepared_tiny, tmp_path, monkeypatch, caplog):
    out = tmp_path / "longform"
    argv = documented_argv(trained_tiny["chunk-causal"], prepared_tiny, out)
    with caplog.at_level(logging.INFO):
        assert main(argv) == 0
    with open(out / "results.tsv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    assert len(rows) == 1
    row = rows[0]
    assert (row["k"], row["segment_size"], row["n_talks"], row["n_sentences"]) == (
        "3", "160", "1", "10")
    talks = read_talks(talks_folder(prepared_tiny, "tst-COMMON"))
    assert int(row["ref_words"]) == sum(len(s.text.split()) for s in talks[0].sentences)
    streams = read_streams(out / "k3_seg160" / "instances.log")
    assert int(row["hyp_words"]) == len(streams[0].words) > 0
    bleu, laal, laal_ca = _simulstream_scores(talks, streams, monkeypatch)
    assert float(row["BLEU"]) == pytest.approx(bleu, abs=5e-4)  # the table's 3 decimals
    assert float(row["StreamLAAL"]) == pytest.approx(laal, abs=5e-4)
    assert float(row["StreamLAAL_CA"]) == pytest.approx(laal_ca, abs=5e-4)
    assert check_longform_run(tmp_path, prepared_tiny) == rows  # BLEU, chrF from its files
    # a second call runs nothing again and leaves the table as it was
    before = (out / "results.tsv").stat().st_mtime_ns
    caplog.clear()
    with caplog.at_level(logging.INFO):
        assert main(argv) == 0
    assert "done before with the same checkpoint and settings" in caplog.text
    assert (out / "results.tsv").stat().st_mtime_ns == before


def test_every_command_of_the_doc_is_run_by_a_test():
    """docs/longform.md's commands: the stage's (run above), the demo recipe with
    ``--longform true`` (tests/test_recipe_demo.py) and the benchmark
    (tests/longform/test_bench_longform.py)."""
    assert sorted(commands(DOC)) == sorted([
        "scripts/run.sh --recipe configs/recipes/demo.sh --longform true",
        " ".join(command_starting(DOC, "python -m fairseq_mgcm.longform.stage")),
        " ".join(command_starting(DOC, "OMP_NUM_THREADS=1 python benchmarks/bench_longform.py"))])
