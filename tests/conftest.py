"""Shared pytest fixtures. Each section belongs to one part of the code base; keep them apart."""
import shutil
from pathlib import Path

import pytest

# ---------------------------------------------------------------------------------------------
# data (fairseq_mgcm/data): a tiny prepared corpus with real espeak-ng audio
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def prepared_tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A prepared data folder (docs/architecture.md section 2) built from the grammar.

    60 train / 10 dev / 10 tst-COMMON utterances, made once per test session (a few seconds).
    The MuST-C-layout corpus it came from is next to it, at ``<path>/../corpus``.
    """
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
    from fairseq_mgcm.data.mustc.prepare import prepare
    from fairseq_mgcm.data.synthetic.corpus import make_corpus

    root = tmp_path_factory.mktemp("prepared_tiny")
    corpus = make_corpus(root / "corpus", n_train=60, n_dev=10, n_test=10, seed=0,
                         utts_per_talk=10)
    return prepare(corpus, root / "data", vocab_size_tgt=256, vocab_size_src=256)


# ------------------------------------------- end of data -------------------------------------
