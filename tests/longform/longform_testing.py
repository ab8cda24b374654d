"""What a user reads off a recipe run's long-form stage, checked against its own files; for the
recipe tests (``sys.path`` gets ``tests/longform``, as ``tests/test_docs_commands.py`` does for
``tests/agents``) and this folder's end-to-end test."""
from __future__ import annotations

import csv
import math
import sys
from pathlib import Path

from sacrebleu.metrics.bleu import BLEU
from sacrebleu.metrics.chrf import CHRF

from fairseq_mgcm.longform.instances import read_streams
from fairseq_mgcm.longform.talks import SENTENCES_TEXT, talks_folder


def check_longform_run(run_dir: Path, data_dir: Path, split: str = "tst-COMMON"
                       ) -> list[dict[str, str]]:
    """``run_dir/longform/results.tsv``'s rows, once each row's BLEU and chrF equal sacrebleu
    recomputed from its ``resegmented.txt`` against the talks' reference sentences, its cut
    holds exactly the words of its log, and its StreamLAAL is a number when words were
    written."""
    with open(run_dir / "longform" / "results.tsv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    assert rows, f"{run_dir}/longform/results.tsv has no row"
    references = (talks_folder(data_dir, split) / SENTENCES_TEXT).read_text(
        encoding="utf-8").splitlines()
    for row in rows:
        run = run_dir / "longform" / Path(row["output"]).name
        hypotheses = (run / "resegmented.txt").read_text(encoding="utf-8").splitlines()
        assert len(hypotheses) == int(row["n_sentences"])
        refs = [references[:len(hypotheses)]]
        assert math.isclose(float(row["BLEU"]), BLEU().corpus_score(hypotheses, refs).score,
                            abs_tol=5e-4), row
        assert math.isclose(float(row["chrF"]), CHRF().corpus_score(hypotheses, refs).score,
                            abs_tol=5e-4), row
        words = [w for stream in read_streams(run / "instances.log") for w in stream.words]
        assert " ".join(hypotheses).split() == words
        assert int(row["hyp_words"]) == len(words)
        if words:
            assert math.isfinite(float(row["StreamLAAL"])), row
            assert math.isfinite(float(row["StreamLAAL_CA"])), row
    return rows


def load_simulstream_quality(monkeypatch) -> None:
    """Make simulstream's quality-scorer package importable here: it imports COMET's scorer on
    import, and COMET needs numpy<2 (not installed). A stand-in ``comet`` module lets it load;
    a half-imported copy left by an earlier failed import in this process (its COMET scorer
    subclassing a class the re-import replaced) is dropped first."""
    import types

    if "comet" not in sys.modules:
        stand_in = types.ModuleType("comet")
        stand_in.download_model = stand_in.load_from_checkpoint = None  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, "comet", stand_in)
    for name in [m for m in sys.modules if m.startswith("simulstream.metrics.scorers.quality")]:
        del sys.modules[name]
