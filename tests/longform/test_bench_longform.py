"""docs/longform.md's benchmark command (benchmarks/bench_longform.py) on the session's tiny
model and corpus, at a small budget: two talk lengths (6 and 15 s instead of 1 and 10 min)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from docs_commands import command_starting

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "longform.md"
pytestmark = pytest.mark.slow


def test_the_documented_benchmark_streams_talks_of_two_lengths_in_flat_memory(
        trained_tiny, prepared_tiny, tmp_path):
    words = command_starting(DOC, "OMP_NUM_THREADS=1 python benchmarks/bench_longform.py")
    replace = {"exp/demo/mgcm/checkpoint_avg.pt": str(trained_tiny["chunk-causal"]),
               "exp/demo/corpus/en-de": str(prepared_tiny.parent / "corpus" / "en-de"),
               "out.png": str(tmp_path / "out.png")}
    assert set(replace) <= set(words), words
    argv = [replace.get(word, word) for word in words[3:]]
    i = argv.index("--minutes")
    assert argv[i + 1 : i + 3] == ["1", "10"]
    argv[i + 1 : i + 3] = ["0.1", "0.25"]  # the small budget
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_longform.py"), *argv,
                          "--json", str(tmp_path / "out.json")], cwd=ROOT, capture_output=True,
                         text=True, timeout=600, env={"OMP_NUM_THREADS": "1", **_env()})
    assert run.returncode == 0, run.stderr[-3000:]
    short, long = json.loads((tmp_path / "out.json").read_text())["results"]
    assert (short["seconds"], long["seconds"]) == (6.0, 15.0)
    assert long["peak_rss_mb"] <= 1.2 * short["peak_rss_mb"]
    assert long["sentences"] > short["sentences"] >= 1  # sentence ends came along the talk
    assert 0 < long["rtf"] < 5 and len(long["chunk_ms_by_minute"]) == 1
    assert (tmp_path / "out.png").read_bytes()[:4] == b"\x89PNG"
    assert "peak/first" in run.stdout


def _env() -> dict[str, str]:
    from recipe_runs import _env as recipe_env

    return recipe_env()
