#!/usr/bin/env python
"""A talk of any length: peak memory and per-chunk cost of ``--longform`` against talk length.

Each talk length runs in a fresh process (so its peak RSS is its own): the agent loads the
checkpoint, then the talk streams through it chunk by chunk as SimulEval feeds it (lists of
floats, one ``pushpop`` per chunk). The talk is the corpus's wavs joined end to end, repeated as
needed, read block by block from disk, so the benchmark itself never holds the whole talk.

Reported per length: peak RSS of the process, RSS after the model loaded (so the growth during
streaming is visible on its own), the real-time factor (compute / audio), the mean cost of a
chunk in each minute of the talk, the words and sentences written. With ``--plot`` a figure of
per-chunk cost against talk time (longest talk) and peak memory against length.

Usage:
    OMP_NUM_THREADS=1 python benchmarks/bench_longform.py \\
        --checkpoint exp/demo/mgcm/checkpoint_avg.pt --corpus exp/demo/corpus/en-de \\
        --minutes 1 10 --waitk 7 --segment-ms 320 \\
        [--history reset] [--json out.json] [--plot out.png]
"""
from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from argparse import Namespace
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf

SAMPLE_RATE = 16000


def corpus_wavs(corpus: Path) -> list[Path]:
    """Every talk wav of a MuST-C-layout corpus (``<corpus>/data/<split>/wav/*.wav``)."""
    wavs = sorted(corpus.glob("data/*/wav/*.wav"))
    if not wavs:
        sys.exit(f"{corpus}: no data/<split>/wav/*.wav (a corpus in MuST-C layout)")
    return wavs


def talk_chunks(wavs: list[Path], seconds: float, chunk: int) -> Iterator[np.ndarray]:
    """``seconds`` of the wavs joined end to end (repeated), in chunks of ``chunk`` samples."""
    remaining = int(seconds * SAMPLE_RATE)
    carry = np.zeros(0, dtype=np.float32)
    while remaining > 0:
        for wav in wavs:
            for block in sf.blocks(str(wav), blocksize=chunk, dtype="float32"):
                carry = np.concatenate([carry, block[:remaining]])
                remaining -= min(len(block), remaining)
                while len(carry) >= chunk or (remaining == 0 and len(carry)):
                    yield carry[:chunk]
                    carry = carry[chunk:]
                if remaining == 0:
                    return


def rss_mb() -> float:
    """Current resident memory of this process (Linux /proc)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize() / 2**20


def stream_one(args: argparse.Namespace) -> dict[str, object]:
    """In this process: load the model, stream one talk, measure."""
    from simuleval.data.segments import SpeechSegment

    from fairseq_mgcm.agents.waitk_agent import WaitkAgent

    agent = WaitkAgent(Namespace(
        checkpoint=str(args.checkpoint), data_dir=args.data_dir, config_yaml=None,
        device="cpu", fp16=False, dtype=None, waitk=args.waitk, max_len_a=0.2, max_len_b=10,
        longform=True, history=args.history, source_segment_size=args.segment_ms,
    ))  # fmt: skip
    agent.reset()
    loaded_rss = rss_mb()
    chunk = SAMPLE_RATE * args.segment_ms // 1000
    costs: list[tuple[float, float]] = []  # (talk time in s at the chunk's start, seconds)
    words = 0
    position = 0
    chunks = list_free(talk_chunks(corpus_wavs(args.corpus), args.seconds, chunk))
    for samples, last in chunks:
        position += len(samples)
        segment = SpeechSegment(content=samples.tolist(), sample_rate=SAMPLE_RATE, finished=last)
        start = time.perf_counter()
        out = agent.pushpop(segment)
        costs.append(((position - len(samples)) / SAMPLE_RATE, time.perf_counter() - start))
        words += len(out.content.split()) if out.content else 0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    per_minute: dict[int, list[float]] = {}
    for at, cost in costs:
        per_minute.setdefault(int(at // 60), []).append(cost * 1000)
    return {
        "seconds": position / SAMPLE_RATE, "peak_rss_mb": peak, "rss_after_load_mb": loaded_rss,
        "rtf": sum(c for _, c in costs) / (position / SAMPLE_RATE), "words": words,
        "sentences": agent.states.n_sentences + 1,
        "chunk_ms_by_minute": {m: statistics.mean(v) for m, v in sorted(per_minute.items())},
        "chunk_ms": [[round(at, 2), round(c * 1000, 3)] for at, c in costs],
    }  # fmt: skip


def list_free(chunks: Iterator[np.ndarray]) -> Iterator[tuple[np.ndarray, bool]]:
    """Each chunk with whether it is the last (one chunk of look-ahead, never the whole talk)."""
    previous = next(chunks, None)
    for current in chunks:
        assert previous is not None
        yield previous, False
        previous = current
    if previous is not None:
        yield previous, True


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    longest = max(results, key=lambda r: r["seconds"])
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    at = [p[0] / 60 for p in longest["chunk_ms"]]
    cost = [p[1] for p in longest["chunk_ms"]]
    left.plot(at, cost, ",", alpha=0.4)
    by_minute = {int(m): ms for m, ms in longest["chunk_ms_by_minute"].items()}  # JSON keys
    minutes = sorted(by_minute)
    left.plot([m + 0.5 for m in minutes], [by_minute[m] for m in minutes],
              "o-", label="mean per minute")
    left.set(xlabel="talk time (min)", ylabel="compute per chunk (ms)",
             title=f"{longest['seconds'] / 60:.0f}-minute talk")
    left.legend()
    lengths = [r["seconds"] / 60 for r in results]
    right.plot(lengths, [r["peak_rss_mb"] for r in results], "o-", label="peak RSS")
    right.plot(lengths, [r["rss_after_load_mb"] for r in results], "s--", label="after loading")
    right.set(xlabel="talk length (min)", ylabel="MB", title="memory")
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--data-dir", default=None, help="default: the checkpoint's --data")
    parser.add_argument("--corpus", type=Path, required=True,
                        help="corpus in MuST-C layout (<corpus>/data/<split>/wav/*.wav)")
    parser.add_argument("--minutes", type=float, nargs="+", default=[1, 10])
    parser.add_argument("--waitk", type=int, default=7)
    parser.add_argument("--segment-ms", type=int, default=320)
    parser.add_argument("--history", default="reset")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--plot", type=Path)
    parser.add_argument("--seconds", type=float, help=argparse.SUPPRESS)  # one length, in-process
    args = parser.parse_args()
    if args.seconds is not None:
        print(json.dumps(stream_one(args)))
        return
    results = []
    for minutes in args.minutes:
        command = [sys.executable, __file__, *sys.argv[1:], "--seconds", str(minutes * 60)]
        out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        results.append(json.loads(out.strip().splitlines()[-1]))
    base = results[0]
    print(f"machine: {platform.processor() or platform.machine()}, "
          f"{platform.python_version()}, k={args.waitk}, {args.segment_ms} ms chunks, "
          f"history {args.history}")  # fmt: skip
    print("minutes  peak MB  after load MB  peak/first  RTF    chunk ms (first min, last min)"
          "  words  sentences")
    for r in results:
        by_minute = list(r["chunk_ms_by_minute"].values())
        print(f"{r['seconds'] / 60:7.1f}  {r['peak_rss_mb']:7.0f}  {r['rss_after_load_mb']:13.0f}"
              f"  {r['peak_rss_mb'] / base['peak_rss_mb']:10.3f}  {r['rtf']:.3f}"
              f"  {by_minute[0]:8.2f} {by_minute[-1]:8.2f}"
              f"  {r['words']:14d}  {r['sentences']:9d}")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps({"args": vars(args), "results": results}, indent=1,
                                        default=str))
    if args.plot:
        plot(results, args.plot)


if __name__ == "__main__":
    main()
