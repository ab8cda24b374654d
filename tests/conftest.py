"""Shared pytest fixtures. Each section belongs to one part of the code base; keep them apart."""
import os
import shutil
from pathlib import Path

import pytest
from build_once import build_once, shared_root
from tiny_models import ENCODERS, train_tiny

# ---------------------------------------------------------------------------------------------
# scheduling: long files first
# ---------------------------------------------------------------------------------------------


# The longest files (minutes each on 2 cores), longest first; then the file that trains the
# agent tests' models (trained_tiny) and files that do not need them, so that the other files
# using those models find them built instead of waiting for them.
LONGEST = ("test_recipe_demo.py", "test_recipe_mustc_s.py", "test_recipe_comparisons.py",
           "test_recipe_lineage.py",
           "test_train_faults.py", "test_simuleval_cli.py", "test_train_conflict_cli.py",
           "test_train_cli.py", "test_gpu_suite.py", "test_prepare_faults.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The longest files first, then the other files with end-to-end (``slow``) tests, then the
    rest, each group in collection order.

    scripts/test.sh runs three xdist workers that take whole files in this order
    (``--dist loadfile``): the long files start at once, side by side, and the many short ones
    fill in around them instead of leaving one worker on a long file at the end.
    """
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}

    def rank(item: pytest.Item) -> tuple[int, int]:
        if item.path.name in LONGEST:
            return 0, LONGEST.index(item.path.name)
        return (1 if item.path in slow_files else 2), 0

    items.sort(key=rank)  # stable: file order kept within a group


@pytest.fixture(scope="session", autouse=True)
def _own_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The recipe's cache of checked training flags (``MGCM_CACHE``) is this test run's own,
    shared by its workers: no test reads what an earlier run or the user left there."""
    os.environ["MGCM_CACHE"] = str(shared_root(tmp_path_factory) / "mgcm-cache")


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

    def build(root: Path) -> None:
        corpus = make_corpus(root / "corpus", n_train=60, n_dev=10, n_test=10, seed=0,
                             utts_per_talk=10)
        prepare(corpus, root / "data", vocab_size_tgt=256, vocab_size_src=256)

    return build_once(tmp_path_factory, "prepared_tiny", build) / "data"


# ------------------------------------------- end of data -------------------------------------

# ---------------------------------------------------------------------------------------------
# trained models (the agent's end-to-end tests and the docs' commands)
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def trained_tiny(prepared_tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``{"chunk-causal": checkpoint, "bidirectional": checkpoint}``: the tiny model, wait-k 3,
    r = 4, 80 updates on ``prepared_tiny`` (tests/tiny_models.py)."""
    save_dirs = {name: Path(name.replace("-", "_")) for name in ENCODERS}
    root = build_once(tmp_path_factory, "trained_tiny", lambda root: train_tiny(
        prepared_tiny, {name: root / folder for name, folder in save_dirs.items()}))
    return {name: root / folder / "checkpoint_last.pt" for name, folder in save_dirs.items()}


# ------------------------------------------- end of trained models ---------------------------
