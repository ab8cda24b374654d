"""Evaluate a checkpoint with SimulEval over policies, their latency settings and segment sizes.

Inputs: a checkpoint, its prepared data directory (``config.yaml``, CMVN, SentencePiece models and
``simuleval/<split>/{source,target}.txt``, see docs/architecture.md section 2); the
dictionaries and SentencePiece models must be those the checkpoint recorded at training
(``checkpoints/data_files.py``), or the sweep stops before any run.
Outputs: one SimulEval output directory per (policy setting, segment size) under
``--output-dir`` (``instances.log``) and a results TSV with one row per run: policy, its setting
(``value``), k (wait-k rows), segment size, BLEU, AL, LAAL, AP, DAL, ATD, StartOffset,
EndOffset and their computation-aware ``_CA`` variants. The sacrebleu signature is printed.

Policies (``--policies``, default ``waitk``; ``policies.py``): ``waitk`` runs every ``--k``;
``alignatt:F1,F2``, ``edatt:A1,A2`` and ``local-agreement:N1,N2`` run each given AlignAtt ``f``,
EDAtt ``alpha`` or number of agreeing hypotheses on the same checkpoint (``waitk:K1,K2`` is
``--k K1 K2``). EDAtt's ``lambda`` and the attention layer are agent flags after ``--``.

Every run is SimulEval's own evaluation with the wait-k agent and ``--no-scoring``, driven in
this one process (``simuleval_inprocess.py``): the model is loaded once for the whole sweep,
each run gets a fresh agent, and its ``instances.log`` is what the logged ``simuleval`` command
writes. The log is then scored here with and without computation-aware timing (see
``scoring.py`` for why SimulEval's own table cannot be trusted for the plain values; scoring
here also survives a run in which no instance wrote a word). The segment size defaults to the
model's read step (``pre_decision_ratio`` x 40 ms, read from the checkpoint).

A finished run's ``.done`` marker records what produced it: the checkpoint (path, size and
SHA-256 of its content), k, segment size, ``--max-instances``, the split's source and target
lists (their SHA-256), device, precision and the extra flags. A run is skipped only when its
marker matches all of them; otherwise (a retrained or replaced checkpoint, another
``--max-instances``, ...) it is run again. A run writes into ``<run>.partial/`` and is renamed
into place with its marker only once SimulEval has finished, so a killed sweep leaves no run
that looks finished, and the next sweep starts that run afresh.

Extra flags after ``--`` go to SimulEval and the agent; flags it does not know, flags the sweep
sets itself (``--waitk``, ``--output``, ...) and flags that make SimulEval do something else
than evaluate here (``--remote-eval``, ``--slurm``, ``--agent``, ...) are refused up front.

Usage:
    python scripts/simuleval_sweep.py --checkpoint exp/st/checkpoint_best.pt \\
        --data-dir data/en-de \\
        --split tst-COMMON --k 3 5 7 9 [--segment-size 320 640] --output-dir exp/st/simul \\
        [--policies waitk alignatt:2,4,8 edatt:0.4,0.2 local-agreement:2,3] \\
        [--device cuda --fp16] [--max-instances 100] [-- <extra agent/simuleval flags>]
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import io
import logging
import math
import os
import shlex
import shutil
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

import yaml

from fairseq_mgcm.agents.read_step import read_step_ms_from_cfg
from fairseq_mgcm.agents.scoring import LATENCY_METRICS, score_log
from fairseq_mgcm.agents.simuleval_inprocess import (
    AGENT_CLASS,
    FlagError,
    check_extra_flags,
    evaluate,
)
from fairseq_mgcm.agents.sweep_points import SweepPoint, sweep_points
from fairseq_mgcm.atomic_files import write_text
from fairseq_mgcm.checkpoints.data_files import (
    DataFileMismatch,
    check_data_files,
    data_files_record,
)
from fairseq_mgcm.checkpoints.errors import CheckpointError, read_checkpoint
from fairseq_mgcm.data.mustc.source_list import resolve_source_list
from fairseq_mgcm.errors import BadValue, UserError, one_line
from fairseq_mgcm.markers import mark_done, stale_reason
from fairseq_mgcm.recipe.lineage import data_key

COLUMNS = (
    ["policy", "value", "k", "segment_size", "BLEU", *LATENCY_METRICS]
    + [f"{m}_CA" for m in LATENCY_METRICS]
    + ["n_instances", "output"]
)

logger = logging.getLogger("simuleval_sweep")


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, list[str]]:
    """The sweep's options, and the extra flags after a final ``--``."""
    parser = argparse.ArgumentParser(
        prog="simuleval_sweep.py",
        description=(__doc__ or "").split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument("--checkpoint", type=Path, required=True, help="fairseq checkpoint")
    parser.add_argument("--data-dir", type=Path, required=True, help="prepared data directory")
    parser.add_argument("--config-yaml", default="config.yaml", help="data config in --data-dir")
    parser.add_argument("--split", default="tst-COMMON", help="split under <data-dir>/simuleval")
    parser.add_argument("--k", "--waitk", dest="k", type=int, nargs="+", default=None,
                        help="wait-k values (a k beyond the source length reads everything); "
                        "needed when --policies has a bare waitk")
    parser.add_argument("--policies", nargs="+", default=["waitk"], metavar="POLICY[:V,...]",
                        help="policies and their settings: waitk (the --k values), "
                        "alignatt:F,..., edatt:ALPHA,..., local-agreement:N,... (default waitk)")
    parser.add_argument("--segment-size", "--segment-sizes", dest="segment_size", type=int,
                        nargs="+", default=None,
                        help="source segment sizes (ms); default: the model's read step "
                        "(pre_decision_ratio x 40 ms)")
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
    own, extra = split_at_double_dash(sys.argv[1:] if argv is None else argv)
    return parser.parse_args(own), extra


def split_at_double_dash(argv: list[str]) -> tuple[list[str], list[str]]:
    """``(our arguments, the agent's)``: what comes after ``--`` goes to the agent as it is."""
    if "--" not in argv:
        return argv, []
    cut = argv.index("--")
    return argv[:cut], argv[cut + 1 :]


def _resolved_source(args: argparse.Namespace) -> Path:
    """Where ``main`` puts an absolute copy of ``source.txt`` (whose paths are relative to its
    own folder, so that the data folder can move)."""
    return args.output_dir / f"source_{args.split}.txt"


def simuleval_flags(
    args: argparse.Namespace, point: SweepPoint, segment_size: int, output: Path,
    extra: list[str],
) -> list[str]:
    """The ``simuleval`` flags of one run: what runs here, and what a user would type."""
    split_dir = args.data_dir / "simuleval" / args.split
    flags = [
        "--agent-class", AGENT_CLASS,
        "--source", str(_resolved_source(args)),
        "--target", str(split_dir / "target.txt"),
        "--source-segment-size", str(segment_size),
        "--checkpoint", str(args.checkpoint),
        "--data-dir", str(args.data_dir),
        "--config-yaml", args.config_yaml,
        *point.agent_flags(),
        "--device", args.device,
        "--output", str(output),
        "--no-scoring",  # scored here (score_log): SimulEval's scorer fails when nothing is written
        "--no-progress-bar",
    ]  # fmt: skip
    if args.fp16:
        flags.append("--fp16")
    if args.max_instances > 0:
        flags += ["--end-index", str(args.max_instances)]
    return flags + extra


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sweep_inputs(args: argparse.Namespace, extra: list[str]) -> dict[str, object]:
    """What every run of this sweep depends on besides k and the segment size (hashed once)."""
    split_dir = args.data_dir / "simuleval" / args.split
    return {
        "checkpoint": {
            "path": str(args.checkpoint.resolve()),
            "size": args.checkpoint.stat().st_size,
            "sha256": file_sha256(args.checkpoint),
        },
        "data_dir": str(args.data_dir.resolve()),
        "config_yaml": args.config_yaml,
        "split": args.split,
        "source_sha256": file_sha256(split_dir / "source.txt"),
        "target_sha256": file_sha256(split_dir / "target.txt"),
        # what the agent reads besides: config, dictionaries, SentencePiece models, CMVN, wavs
        "data_key": data_key(args.data_dir, simuleval=[args.split]),
        "max_instances": args.max_instances if args.max_instances > 0 else None,
        "device": args.device,
        "fp16": args.fp16,
        "extra_flags": extra,
    }


def run_key(inputs: dict[str, object], point: SweepPoint, segment_size: int
            ) -> dict[str, object]:
    """The content of a finished run's ``.done`` marker (a wait-k run's as before policies
    existed, so that its finished runs stay finished)."""
    if point.policy == "waitk":
        return {"k": int(point.value), "segment_size": segment_size, **inputs}
    return {"policy": point.policy, "value": point.value, "segment_size": segment_size,
            **inputs}


def run_one(
    args: argparse.Namespace, point: SweepPoint, segment_size: int, extra: list[str],
    inputs: dict[str, object],
) -> Path:
    """Evaluate one (policy setting, segment size) unless done with the same inputs; return the
    run's directory."""
    output = args.output_dir / f"{point.folder}_seg{segment_size}"
    key = run_key(inputs, point, segment_size)
    log = output / "instances.log"
    name = f"{point.label} segment={segment_size} ms"
    reason = "--force" if args.force else stale_reason(output / ".done", key, [log])
    if reason is None:
        logger.info("%s: done before with the same checkpoint and settings, re-scoring %s",
                    name, output)  # fmt: skip
        return output
    partial = output.with_name(output.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)  # left by a killed sweep
    flags = simuleval_flags(args, point, segment_size, partial, extra)
    logger.info("%s (%s), as a command: simuleval %s", name, reason, shlex.join(flags))
    start = time.perf_counter()
    try:
        evaluate(flags)
    except UserError as error:  # bad input (checkpoint, config, wav, flag): no traceback
        fail(f"{point.label}, segment {segment_size} ms: {one_line(error)}")
    except (Exception, SystemExit) as error:  # SystemExit: argparse inside SimulEval
        logger.error("%s failed", name, exc_info=True)
        raise SystemExit(
            f"simuleval failed for {point.label}, segment {segment_size} ms: "
            f"{type(error).__name__}: {error}"
        ) from error
    logger.info("%s: %.1f s", name, time.perf_counter() - start)
    mark_done(partial / ".done", key)
    shutil.rmtree(output, ignore_errors=True)
    os.replace(partial, output)  # the run and its marker appear together
    return output


def write_tsv(path: Path, rows: list[dict[str, object]]) -> None:
    """Write the results table atomically (a reader never sees half a file), and only when it
    changed, so a re-run of a finished sweep leaves it and everything after it untouched."""
    table = io.StringIO()
    writer = csv.DictWriter(table, fieldnames=COLUMNS, delimiter="\t", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(
            {
                key: (f"{value:.3f}" if isinstance(value, float) and math.isfinite(value)
                      else value)
                for key, value in row.items()
            }
        )
    write_text(path, table.getvalue(), if_changed=True)


def checkpoint_read_step_ms(checkpoint: Path, state: dict[str, Any] | None = None) -> int:
    """The read step of the checkpoint's model (the default segment size); ``state``: the
    checkpoint's content, if read already."""
    state = state if state is not None else read_checkpoint(checkpoint, require=("model", "config"))
    model_cfg = (state.get("cfg") or {}).get("model")
    try:
        return read_step_ms_from_cfg(model_cfg)
    except (AttributeError, KeyError, TypeError, ValueError):
        raise CheckpointError(
            f"{checkpoint}: no pre_decision_ratio/conv_kernel_sizes in its model config; "
            f"pass --segment-size"
        ) from None


def check_trained_data(args: argparse.Namespace) -> dict[str, Any] | None:
    """The checkpoint's content, once the dictionaries and SentencePiece models it recorded at
    training are found in ``--data-dir`` (``checkpoints/data_files.py``). Checked before any
    run: a run done before is re-scored without the agent loading the model. A config that is
    missing or unreadable is left to the agent's loader, which names it (None: not read)."""
    try:
        config = yaml.safe_load((args.data_dir / args.config_yaml).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    if not isinstance(config, dict):
        return None
    state = read_checkpoint(args.checkpoint, require=("model", "config"))
    check_data_files(state.get("task_state") or {}, data_files_record(config, args.data_dir),
                     str(args.checkpoint))  # fmt: skip
    return state


def check_inputs(args: argparse.Namespace, extra: list[str]) -> None:
    """Refuse bad flags and missing files before any run (exit 2, one line)."""
    split_dir = args.data_dir / "simuleval" / args.split
    for path in (args.checkpoint, split_dir / "source.txt", split_dir / "target.txt"):
        if not path.is_file():
            fail(f"missing input file: {path}")
    for flag, values in (("--k", args.k or [1]), ("--segment-size", args.segment_size or [1])):
        if any(v < 1 for v in values):
            fail(f"{flag} values must be >= 1, got {values}")
    try:
        args.points = sweep_points(args.policies, args.k)
    except BadValue as error:
        fail(str(error))
    if extra:
        base = simuleval_flags(args, args.points[0], (args.segment_size or [1])[0], Path("out"),
                               [])
        try:
            check_extra_flags(base, extra)
        except FlagError as error:
            fail(f"extra flag after --: {error}")


def fail(message: str) -> NoReturn:
    print(f"simuleval_sweep: {message}", file=sys.stderr)
    raise SystemExit(2)


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(
        format="%(asctime)s | %(levelname)s | %(name)s | %(message)s", level=logging.INFO
    )
    args, extra = parse_args(argv)
    check_inputs(args, extra)
    try:
        state = check_trained_data(args)
        if args.segment_size is None:
            args.segment_size = [checkpoint_read_step_ms(args.checkpoint, state)]
            logger.info("segment size: the model's read step, %d ms", args.segment_size[0])
    except (CheckpointError, DataFileMismatch) as error:
        fail(str(error))
    del state  # the agent loads the model itself
    resolve_source_list(args.data_dir / "simuleval" / args.split / "source.txt",
                        _resolved_source(args))
    inputs = sweep_inputs(args, extra)
    results = args.results or args.output_dir / "results.tsv"
    rows: list[dict[str, object]] = []
    signature = ""
    started = time.time()
    for point in args.points:
        for segment_size in args.segment_size:
            output = run_one(args, point, segment_size, extra, inputs)
            scores, signature = score_log(
                output / "instances.log", tokenize=args.sacrebleu_tokenizer
            )
            rows.append({"policy": point.policy, "value": point.value,
                         "k": int(point.value) if point.policy == "waitk" else math.nan,
                         "segment_size": segment_size, **scores,
                         "n_instances": int(scores["n_instances"]), "output": str(output)})
            if (output / ".done").stat().st_mtime >= started:
                write_tsv(results, rows)  # a long sweep's table grows as runs finish
    write_tsv(results, rows)  # unchanged: left untouched, so a finished sweep rewrites nothing
    for row in rows:
        logger.info(
            "%s %s seg=%s BLEU %.2f AL %.1f AL_CA %.1f", row["policy"], row["value"],
            row["segment_size"], row["BLEU"], row["AL"], row["AL_CA"],
        )  # fmt: skip
    print(f"results: {results}")
    print(f"sacrebleu signature: {signature}")
