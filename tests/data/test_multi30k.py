"""Real parallel text (Multi30k, first 20 lines) through the corpus maker and preparation.

Skipped when ``<repo>/../shared/data/multi30k`` is not there (it is not part of the repo).
"""
import shutil
from pathlib import Path

import pytest
from data_testing import read_tsv, read_yaml

from fairseq_mgcm.data.mustc.prepare import prepare
from fairseq_mgcm.data.synthetic.corpus import write_corpus
from fairseq_mgcm.data.synthetic.text_sources import read_parallel_text, text_splits

MULTI30K = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "multi30k"
pytestmark = [
    pytest.mark.skipif(not (MULTI30K / "train.en.gz").is_file(), reason=f"no {MULTI30K}"),
    pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng"),
]


def test_multi30k_first_lines(tmp_path):
    pairs = read_parallel_text(MULTI30K / "train.en.gz", MULTI30K / "train.de.gz",
                               max_sentences=20)
    assert len(pairs) == 20
    splits = text_splits(pairs, "all", n_dev=3, n_test=3, seed=0)
    assert [len(splits[s]) for s in ("train", "dev", "tst-COMMON")] == [14, 3, 3]
    corpus = write_corpus(tmp_path / "corpus", splits, utts_per_talk=5)
    entries = read_yaml(corpus / "en-de" / "data" / "train" / "txt" / "train.yaml")
    assert len(entries) == 14
    out = prepare(corpus, tmp_path / "data", vocab_size_tgt=120, vocab_size_src=120)
    rows = read_tsv(out / "train.tsv")
    assert {(r["src_text"], r["tgt_text"]) for r in rows} == set(splits["train"])
    assert all(int(r["n_frames"]) > 50 for r in rows)
