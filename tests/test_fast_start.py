"""fairseq_mgcm/fast_start.py: packages fairseq imports but this plugin never uses load only when
used, and then are the real ones.

The mechanism is tested in-process on a small package of our own (deferred in place of
scikit-learn), so that the test process's own modules are left alone; one fresh interpreter
starts the way a fairseq rank does under ``python -m fairseq_mgcm.cli`` and checks the real
thing: fairseq imports without scikit-learn and scipy.stats, and fairseq's calls into them
return the real results. That interpreter costs about 5 s of CPU (fairseq's import, then
scikit-learn's when it is used): the one test here that pays fairseq's import.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from fairseq_mgcm import fast_start

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "mgcm_fast_start_probe"
FILES = {
    "__init__.py": "from .base import Base\nfrom . import metrics\nLOADS.append('package')\n"
                   "VERSION = '1.0'\n",
    "base.py": "import builtins\nLOADS = builtins.MGCM_PROBE_LOADS\nLOADS.append('base')\n"
               "class Base:\n    pass\n",
    "metrics.py": "def score(a, b):\n    return a + b\ndef roc(a):\n    return -a\n",
    "extra.py": "from .base import Base\nclass Model(Base):\n    pass\n",
}


@pytest.fixture
def probe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """A package deferred as scikit-learn is (``metrics.score`` bound at import, as fairseq binds
    ``f1_score``); yields the list each module execution appends its name to."""
    import builtins

    folder = tmp_path / PACKAGE
    folder.mkdir()
    for name, text in FILES.items():
        if name == "__init__.py":
            text = "import builtins\nLOADS = builtins.MGCM_PROBE_LOADS\n" + text
        (folder / name).write_text(text)
    loads: list[str] = []
    monkeypatch.setattr(builtins, "MGCM_PROBE_LOADS", loads, raising=False)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(fast_start, "DEFERRED", {
        PACKAGE: {PACKAGE: (), f"{PACKAGE}.metrics": ("score",)}})
    monkeypatch.delenv(fast_start.EAGER_ENV, raising=False)
    try:
        yield loads
    finally:
        for name in [n for n in sys.modules if n.split(".")[0] == PACKAGE]:
            del sys.modules[name]
        fast_start._pending.clear()
        if fast_start._FINDER in sys.meta_path:
            sys.meta_path.remove(fast_start._FINDER)


def test_from_imports_load_nothing_and_a_bound_name_loads_the_package_when_called(probe):
    assert fast_start.defer_unused_imports() == [PACKAGE]
    from mgcm_fast_start_probe import metrics  # as fairseq: from sklearn import metrics
    from mgcm_fast_start_probe.metrics import score  # as fairseq: ... import f1_score
    assert probe == [] and "placeholder" in repr(metrics)
    assert score(2, 3) == 5 and probe == ["base", "package"]
    assert type(sys.modules[PACKAGE]).__name__ == "module"  # the real one, in place
    assert metrics.roc(4) == -4  # the placeholder fairseq kept forwards to the real module
    assert fast_start._FINDER not in sys.meta_path and probe == ["base", "package"]


def test_reading_any_other_attribute_loads_the_real_package_once(probe):
    fast_start.defer_unused_imports()
    import mgcm_fast_start_probe as package
    from mgcm_fast_start_probe import metrics

    assert probe == []
    assert metrics.roc(1) == -1 and probe == ["base", "package"]
    assert package.VERSION == "1.0" and package.Base is sys.modules[f"{PACKAGE}.base"].Base
    assert probe == ["base", "package"]


def test_a_submodule_imported_first_is_the_one_the_package_uses(probe):
    fast_start.defer_unused_imports()
    import mgcm_fast_start_probe.base as base  # imported by the package's own __init__ too
    from mgcm_fast_start_probe.extra import Model  # a submodule the package does not import

    assert probe == ["base", "package"]  # base.py ran once
    assert sys.modules[PACKAGE].Base is base.Base and issubclass(Model, base.Base)
    assert base.__spec__.name == f"{PACKAGE}.base" and base.__spec__.origin.endswith("base.py")


def test_an_imported_package_is_left_alone_and_the_switch_turns_it_off(probe, monkeypatch):
    import mgcm_fast_start_probe  # noqa: F401

    assert fast_start.defer_unused_imports() == [] and fast_start._pending == set()
    del sys.modules[PACKAGE], sys.modules[f"{PACKAGE}.metrics"], sys.modules[f"{PACKAGE}.base"]
    monkeypatch.setenv(fast_start.EAGER_ENV, "1")
    assert fast_start.defer_unused_imports() == [] and PACKAGE not in sys.modules


# A rank of `python -m fairseq_mgcm.cli` as fairseq spawns one (several GPUs): the module runs
# as __mp_main__, then fairseq loads. What the plugin's tasks see, and what fairseq's calls give.
_RANK = """
import json, runpy, sys
runpy.run_module("fairseq_mgcm.cli", run_name="__mp_main__")
import fairseq
from fairseq.criterions import sentence_prediction
from fairseq.tasks import TASK_REGISTRY, audio_classification
seen = {"registered": "speech_to_text_multitask" in TASK_REGISTRY,
        "loaded_at_start": sorted(m for m in ("sklearn.base", "scipy.stats._stats_py")
                                  if m in sys.modules)}
import sklearn.base  # first use: a submodule the real package imports itself
fpr, tpr, _ = audio_classification.sklearn_metrics.roc_curve([0, 1, 1], [0.1, 0.9, 0.4])
from sklearn.linear_model import LogisticRegression
seen.update(
    roc=[fpr.tolist(), tpr.tolist()],
    f1=float(sentence_prediction.f1_score([0, 1, 1, 0], [0, 1, 0, 0])),
    pearson=round(float(sentence_prediction.pearsonr([1, 2, 3], [2, 4, 7])[0]), 6),
    one_base=sklearn.base.clone is sys.modules["sklearn"].clone  # sklearn/base.py ran once
    and issubclass(LogisticRegression, sklearn.base.BaseEstimator),
    real=[type(sys.modules[m]).__name__ for m in ("sklearn", "sklearn.metrics", "scipy.stats")])
print(json.dumps(seen))
"""


def test_a_fairseq_rank_imports_without_sklearn_and_gets_the_real_functions_when_used():
    env = dict(os.environ, OMP_NUM_THREADS="1",
               PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    env.pop(fast_start.EAGER_ENV, None)
    done = subprocess.run([sys.executable, "-c", _RANK], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen == {
        "registered": True, "loaded_at_start": [],
        "roc": [[0.0, 0.0, 0.0, 1.0], [0.0, 0.5, 1.0, 1.0]],  # sklearn's roc_curve, by hand
        "f1": 2 / 3, "pearson": 0.993399, "one_base": True,  # 2·1·0.5/(1+0.5); r by hand
        "real": ["module", "module", "module"]}
