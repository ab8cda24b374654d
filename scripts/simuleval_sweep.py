#!/usr/bin/env python
"""Evaluate a checkpoint with SimulEval over wait-k values and source segment sizes.

Inputs: a checkpoint, its prepared data directory (``config.yaml``, CMVN, SentencePiece models and
``simuleval/<split>/{source,target}.txt``, see docs/architecture.md section 2).
Outputs: one SimulEval output directory per (k, segment size) under ``--output-dir``
(``instances.log``, ``scores.tsv``) and a results TSV with one row per run: k, segment size,
BLEU, AL, LAAL, AP, DAL, ATD, StartOffset, EndOffset and their computation-aware ``_CA``
variants. The sacrebleu signature is printed.

Each run is ``simuleval --computation-aware`` with the wait-k agent; its log is then re-scored
with and without computation-aware timing (see ``fairseq_mgcm/agents/scoring.py`` for why
SimulEval's own table cannot be trusted for the plain values). A run whose directory holds a
``.done`` marker is not repeated.

Usage:
    python scripts/simuleval_sweep.py --checkpoint exp/st/checkpoint_best.pt \\
        --data-dir data/en-de \\
        --split tst-COMMON --k 3 5 7 9 --segment-size 320 640 --output-dir exp/st/simul \\
        [--device cuda --fp16] [--max-instances 100] [-- <extra agent/simuleval flags>]
"""
from __future__ import annotations

import argparse
import csv
import logging
import math
import subprocess
import sys
import time
from pathlib import Path

from fairseq_mgcm.agents.scoring import LATENCY_METRICS, score_log
from fairseq_mgcm.atomic_files import atomic_open
from fairseq_mgcm.data.mustc.source_list import resolve_source_list

AGENT_CLASS = "fairseq_mgcm.agents.waitk_agent.WaitkAgent"
COLUMNS = (
    ["k", "segment_size", "BLEU", *LATENCY_METRICS]
    + [f"{m}_CA" for m in LATENCY_METRICS]
    + ["n_instances", "output"]
)

logger = logging.getLogger("simuleval_sweep")


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument("--checkpoint", type=Path, required=True, help="fairseq checkpoint")
    parser.add_argument("--data-dir", type=Path, required=True, help="prepared data directory")
    parser.add_argument("--config-yaml", default="config.yaml", help="data config in --data-dir")
    parser.add_argument("--split", default="tst-COMMON", help="split under <data-dir>/simuleval")
    parser.add_argument("--k", "--waitk", dest="k", type=int, nargs="+", required=True,
                        help="wait-k values (a k beyond the source length reads everything)")
    parser.add_argument("--segment-size", "--segment-sizes", dest="segment_size", type=int,
                        nargs="+", default=[320], help="source segment sizes (ms)")
    parser.add_argument("--output-dir", "--out-dir", dest="output_dir", type=Path, required=True,
                        help="one sub-directory per run, and results.tsv")
    parser.add_argument("--results", type=Path, default=None,
                        help="results TSV (default: <output-dir>/results.tsv)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--fp16", action="store_true", help="run the model in half precision")
    parser.add_argument(
        "--max-instances", type=int, default=-1, help="evaluate only the first N segments"
    )
    parser.add_argument("--sacrebleu-tokenizer", default="13a", help="sacrebleu tokenizer")
    parser.add_argument("--force", action="store_true", help="re-run runs marked done")
    argv = sys.argv[1:] if argv is None else argv
    extra: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1 :]
    return parser.parse_args(argv), extra


def _resolved_source(args: argparse.Namespace) -> Path:
    """Where ``main`` puts an absolute copy of ``source.txt`` (whose paths are relative to its
    own folder, so that the data folder can move)."""
    return args.output_dir / f"source_{args.split}.txt"


def simuleval_command(
    args: argparse.Namespace, k: int, segment_size: int, output: Path, extra: list[str]
) -> list[str]:
    """The ``simuleval`` command line of one run (as a user would type it)."""
    split_dir = args.data_dir / "simuleval" / args.split
    command = [
        sys.executable, "-m", "simuleval.cli",
        "--agent-class", AGENT_CLASS,
        "--source", str(_resolved_source(args)),
        "--target", str(split_dir / "target.txt"),
        "--source-segment-size", str(segment_size),
        "--checkpoint", str(args.checkpoint),
        "--data-dir", str(args.data_dir),
        "--config-yaml", args.config_yaml,
        "--waitk", str(k),
        "--device", args.device,
        "--output", str(output),
        "--computation-aware",
        "--quality-metrics", "BLEU",
        "--sacrebleu-tokenizer", args.sacrebleu_tokenizer,
        "--latency-metrics", *LATENCY_METRICS,
        "--no-progress-bar",
    ]  # fmt: skip
    if args.fp16:
        command.append("--fp16")
    if args.max_instances > 0:
        command += ["--end-index", str(args.max_instances)]
    return command + extra


def run_one(args: argparse.Namespace, k: int, segment_size: int, extra: list[str]) -> Path:
    """Run simuleval for one (k, segment size) unless already done; return its output dir."""
    output = args.output_dir / f"k{k}_seg{segment_size}"
    done = output / ".done"
    if done.exists() and not args.force:
        logger.info("k=%d segment=%d ms: done before, re-scoring %s", k, segment_size, output)
        return output
    command = simuleval_command(args, k, segment_size, output, extra)
    logger.info("k=%d segment=%d ms: %s", k, segment_size, " ".join(command))
    start = time.perf_counter()
    result = subprocess.run(command, check=False)
    if result.returncode != 0:
        raise SystemExit(
            f"simuleval failed (exit {result.returncode}) for k={k}, segment {segment_size} ms; "
            f"command: {' '.join(command)}"
        )
    logger.info("k=%d segment=%d ms: %.1f s", k, segment_size, time.perf_counter() - start)
    done.touch()
    return output


def write_tsv(path: Path, rows: list[dict[str, object]]) -> None:
    """Write the results table atomically (a reader never sees half a file)."""
    with atomic_open(path) as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, delimiter="\t", lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow(
                {
                    key: (f"{value:.3f}" if isinstance(value, float) and math.isfinite(value)
                          else value)
                    for key, value in row.items()
                }
            )


def check_inputs(args: argparse.Namespace) -> None:
    split_dir = args.data_dir / "simuleval" / args.split
    for path in (args.checkpoint, split_dir / "source.txt", split_dir / "target.txt"):
        if not path.is_file():
            raise SystemExit(f"missing input file: {path}")
    for flag, values in (("--k", args.k), ("--segment-size", args.segment_size)):
        if any(v < 1 for v in values):
            raise SystemExit(f"{flag} values must be >= 1, got {values}")


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(
        format="%(asctime)s | %(levelname)s | %(name)s | %(message)s", level=logging.INFO
    )
    args, extra = parse_args(argv)
    check_inputs(args)
    resolve_source_list(args.data_dir / "simuleval" / args.split / "source.txt",
                        _resolved_source(args))
    results = args.results or args.output_dir / "results.tsv"
    rows: list[dict[str, object]] = []
    signature = ""
    for k in args.k:
        for segment_size in args.segment_size:
            output = run_one(args, k, segment_size, extra)
            scores, signature = score_log(
                output / "instances.log", tokenize=args.sacrebleu_tokenizer
            )
            scores["n_instances"] = int(scores["n_instances"])
            rows.append({"k": k, "segment_size": segment_size, **scores, "output": str(output)})
            write_tsv(results, rows)
    for row in rows:
        logger.info(
            "k=%s seg=%s BLEU %.2f AL %.1f AL_CA %.1f", row["k"], row["segment_size"],
            row["BLEU"], row["AL"], row["AL_CA"],
        )  # fmt: skip
    print(f"results: {results}")
    print(f"sacrebleu signature: {signature}")


if __name__ == "__main__":
    main()
