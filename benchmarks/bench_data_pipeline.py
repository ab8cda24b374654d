#!/usr/bin/env python
"""How long corpus making and MuST-C preparation take per hour of audio on this machine.

Makes a grammar corpus of ``--utterances`` sentences (90% train, 5% dev, 5% tst-COMMON) in a
temporary folder with ``make_corpus``, prepares it with ``prepare``, and reports wall-clock
seconds for each step, the hours of speech, and seconds per hour of speech. Each step runs
from scratch (no resumed work). The preparation's per-hour cost is what the real MuST-C release
(~400 h En-De) would take at the same ``--jobs``, up to disk speed.

Usage:
    OMP_NUM_THREADS=1 python benchmarks/bench_data_pipeline.py [--utterances 2000] [--jobs 2] \\
        [--json out.json] [--keep DIR]
"""
import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import yaml

from fairseq_mgcm.data.mustc.prepare import prepare
from fairseq_mgcm.data.synthetic.corpus import make_corpus


def speech_hours(corpus: Path) -> float:
    seconds = 0.0
    for path in (corpus / "en-de" / "data").glob("*/txt/*.yaml"):
        seconds += sum(e["duration"] for e in yaml.safe_load(path.read_text(encoding="utf-8")))
    return seconds / 3600


def run(root: Path, utterances: int, jobs: int) -> dict:
    n_held_out = max(1, utterances // 20)
    start = time.perf_counter()
    corpus = make_corpus(root / "corpus", n_train=utterances - 2 * n_held_out, n_dev=n_held_out,
                         n_test=n_held_out, jobs=jobs, progress_every=10**9)
    corpus_s = time.perf_counter() - start
    start = time.perf_counter()
    prepare(corpus, root / "data", jobs=jobs, progress_every=10**9)
    prepare_s = time.perf_counter() - start
    hours = speech_hours(corpus)
    return {
        "utterances": utterances, "jobs": jobs, "speech_hours": round(hours, 4),
        "make_corpus_s": round(corpus_s, 2), "prepare_s": round(prepare_s, 2),
        "make_corpus_s_per_hour": round(corpus_s / hours, 1),
        "prepare_s_per_hour": round(prepare_s / hours, 1),
        "cpus": os.cpu_count(), "machine": platform.processor() or platform.machine(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--utterances", type=int, default=2000)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--json", type=Path, help="also write the result here")
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it")
    args = parser.parse_args()
    if args.keep:
        result = run(args.keep, args.utterances, args.jobs)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            result = run(Path(tmp), args.utterances, args.jobs)
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
