"""Fault injection: scripts/prepare_mustc.py killed with SIGKILL, SIGTERM and SIGINT at several
points, then re-run, ends byte-identical to a run that was never interrupted; no temporary file
remains and nothing a killed run found finished is lost."""
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from fairseq_mgcm.data.mustc.prepare import prepare
from fairseq_mgcm.data.synthetic.corpus import make_corpus

REPO = Path(__file__).resolve().parents[2]
VOCAB = ("--vocab-size-tgt", "60", "--vocab-size-src", "60")
TEMP = re.compile(r"\..+\.[a-z0-9_]{8}\.tmp")  # atomic_files' temporary names
# (signal, the stderr line after which it is sent, --jobs), in stage order, each run resuming
# the one before: features of a train split and of an eval split (with worker processes),
# SentencePiece training, SimulEval wavs.
FAULTS = [
    (signal.SIGKILL, "[features train] 20/", 1),
    (signal.SIGTERM, "[features dev] 10/", 2),
    (signal.SIGKILL, "[prepare] spm_tgt: training", 1),
    (signal.SIGINT, "[simuleval tst-COMMON] 5/", 1),
]


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def _temps(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if TEMP.fullmatch(p.name)]


def _run_until(corpus: Path, out: Path, sig: int, after: str, jobs: int) -> tuple[int, str]:
    """Start the script, send ``sig`` once stderr shows a line starting with ``after``."""
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "scripts" / "prepare_mustc.py"), "--mustc-root",
         str(corpus), "--out-dir", str(out), "--progress-every", "1", "--jobs", str(jobs),
         *VOCAB], stderr=subprocess.PIPE, text=True)
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if line.startswith(after):
            proc.send_signal(sig)
            break
    else:
        proc.wait()
        pytest.fail(f"the run ended before {after!r}:\n{''.join(seen)}")
    seen.append(proc.stderr.read())
    return proc.wait(timeout=300), "".join(seen)


@pytest.mark.slow
def test_killed_preparation_resumes_to_the_same_bytes(tmp_path):
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
    corpus = make_corpus(tmp_path / "corpus", n_train=120, n_dev=30, n_test=30, seed=0)
    reference = _files(prepare(corpus, tmp_path / "reference", vocab_size_tgt=60,
                               vocab_size_src=60))
    out = tmp_path / "data"
    for sig, after, jobs in FAULTS:
        before = {name: data for name, data in _files(out).items() if not TEMP.search(name)}
        code, err = _run_until(corpus, out, sig, after, jobs)
        assert code == (-sig if sig == signal.SIGKILL else 128 + sig), err
        if sig != signal.SIGKILL:
            assert "Traceback" not in err
            assert err.endswith(f"prepare_mustc.py: stopped by {signal.Signals(sig).name}; "
                                f"finished stages are kept, run the same command again to "
                                f"resume\n"), err
            assert _temps(out) == []
        elif after.startswith("[features train]"):
            assert [p.name for p in _temps(out)][0].startswith(".fbank80_train.zip.")
        for name, data in before.items():  # what the killed run found is still there
            assert (out / name).read_bytes() == data == reference[name], name
    finished = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "prepare_mustc.py"), "--mustc-root",
         str(corpus), "--out-dir", str(out), *VOCAB], capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr
    assert _temps(out) == []
    result = _files(out)
    assert sorted(result) == sorted(reference)
    for name in reference:
        assert result[name] == reference[name], name
