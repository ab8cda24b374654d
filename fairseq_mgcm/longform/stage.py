"""Long-form evaluation of a checkpoint: every talk of a split streamed whole at each k, scored
after mWER re-segmentation (the recipe's stage 6 with ``--longform true``; docs/longform.md).

Inputs: a checkpoint and its prepared data folder with the split's talk lists
(``simuleval/<split>-talks/``, written by prepare_mustc.py: ``longform/talks.py``).
Outputs in ``--output-dir``:

    k<k>_seg<ms>/instances.log     SimulEval's log, one instance per talk (the agent runs with
                                   ``--longform``), and the run's ``.done`` marker
    k<k>_seg<ms>/resegmented.txt   each reference sentence's hypothesis after re-segmentation
    results.tsv                    per (k, segment size): BLEU, chrF, StreamLAAL, StreamLAAL_CA
                                   (ms), talks, sentences, hypothesis and reference words
    simuleval_talks.tsv            the sweep's own table with each talk as one instance (AL over
                                   a whole talk): kept for reference, not the long-form scores

The runs are the SimulEval sweep's (``agents/sweep.py``): one process, the model loaded once for
every k, each run skipped when its marker records the same checkpoint content, talk lists and
flags. Scoring is redone on every call (seconds) from the logs and the talk lists as they are,
and ``results.tsv`` is rewritten only when a number changed.

Usage:
    python -m fairseq_mgcm.longform.stage --checkpoint exp/none/checkpoint_avg.pt \\
        --data-dir exp/data --split tst-COMMON --k 3 5 7 --output-dir exp/none/longform \\
        [--segment-size 320] [--device cuda] [--max-instances N (talks)] \\
        [-- <extra agent flags, e.g. --history context>]
"""
from __future__ import annotations

import argparse
import csv
import io
import logging
import math
import sys
from pathlib import Path

from fairseq_mgcm.atomic_files import write_text
from fairseq_mgcm.errors import UserError, one_line
from fairseq_mgcm.longform.scoring import COLUMNS, score_log
from fairseq_mgcm.longform.talks import Talk, read_talks, talks_folder
from fairseq_mgcm.recipe.result_files import ResultFileError, read_simul_table

__all__ = ["main", "parse_args", "score_runs", "sweep_argv"]

TABLE_COLUMNS = ("k", "segment_size", *COLUMNS, "output")
SWEEP_TABLE = "simuleval_talks.tsv"
AGENT_FLAGS = ("--longform",)  # the agent translates every sentence of a talk, not the first

logger = logging.getLogger("longform")


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, list[str]]:
    """The stage's options (the sweep's, for the talks of ``--split``) and the extra agent
    flags after a final ``--``."""
    parser = argparse.ArgumentParser(prog="python -m fairseq_mgcm.longform.stage",
                                     description=(__doc__ or "").split("\n\n")[0],
                                     allow_abbrev=False)
    parser.add_argument("--checkpoint", type=Path, required=True, help="fairseq checkpoint")
    parser.add_argument("--data-dir", type=Path, required=True, help="prepared data folder")
    parser.add_argument("--config-yaml", default="config.yaml", help="data config in --data-dir")
    parser.add_argument("--split", default="tst-COMMON",
                        help="its talks are <data-dir>/simuleval/<split>-talks")
    parser.add_argument("--k", type=int, nargs="+", required=True, help="wait-k values")
    parser.add_argument("--segment-size", type=int, nargs="+", default=None,
                        help="ms of audio per read (default: the model's read step)")
    parser.add_argument("--output-dir", type=Path, required=True)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--fp16", action="store_true", help="run the model in half precision")
    parser.add_argument("--max-instances", type=int, default=-1,
                        help="stream only the first N talks")
    parser.add_argument("--sacrebleu-tokenizer", default="13a", help="sacrebleu tokenizer")
    parser.add_argument("--force", action="store_true", help="re-run runs marked done")
    from fairseq_mgcm.agents.sweep import split_at_double_dash  # the sweep's own rule

    own, extra = split_at_double_dash(sys.argv[1:] if argv is None else argv)
    return parser.parse_args(own), extra


def sweep_argv(args: argparse.Namespace, extra: list[str]) -> list[str]:
    """``simuleval_sweep.py``'s arguments for the talks: the talk folder as its split, the
    agent in long-form mode."""
    argv = ["--checkpoint", str(args.checkpoint), "--data-dir", str(args.data_dir),
            "--config-yaml", args.config_yaml,
            "--split", talks_folder(args.data_dir, args.split).name,
            "--k", *map(str, args.k), "--output-dir", str(args.output_dir),
            "--results", str(args.output_dir / SWEEP_TABLE), "--device", args.device,
            "--max-instances", str(args.max_instances),
            "--sacrebleu-tokenizer", args.sacrebleu_tokenizer]
    if args.segment_size:
        argv += ["--segment-size", *map(str, args.segment_size)]
    argv += ["--fp16"] * args.fp16 + ["--force"] * args.force
    return [*argv, "--", *AGENT_FLAGS, *extra]


def score_runs(output_dir: Path, talks: list[Talk], tokenize: str = "13a"
               ) -> tuple[list[dict[str, object]], str]:
    """One long-form row per run of the sweep's table, and the BLEU signature."""
    sweep_rows, outputs = read_simul_table(output_dir / SWEEP_TABLE)
    rows: list[dict[str, object]] = []
    signature = ""
    for sweep_row, output in zip(sweep_rows, outputs):
        run = output_dir / Path(output).name  # found by name: the folder may have moved
        scores = score_log(talks, run / "instances.log", tokenize)
        signature = scores.signature
        rows.append({"k": int(sweep_row["k"]), "segment_size": int(sweep_row["segment_size"]),
                     **scores.row(), "output": str(run)})
    return rows, signature


def _table(rows: list[dict[str, object]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=TABLE_COLUMNS, delimiter="\t", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: f"{value:.3f}" if isinstance(value, float) and math.isfinite(value)
                         else value for key, value in row.items()})
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    args, extra = parse_args(argv)
    prog = "longform"
    try:
        talks = read_talks(talks_folder(args.data_dir, args.split))
        from fairseq_mgcm.agents.sweep import main as sweep  # SimulEval, and fairseq once it runs

        sweep(sweep_argv(args, extra))
        rows, signature = score_runs(args.output_dir, talks, args.sacrebleu_tokenizer)
    except (UserError, ResultFileError) as error:
        print(f"{prog}: error: {one_line(error)}", file=sys.stderr)
        return 2
    results = args.output_dir / "results.tsv"
    write_text(results, _table(rows), if_changed=True)
    for row in rows:
        logger.info("k=%s seg=%s long-form BLEU %.2f chrF %.2f StreamLAAL %.0f ms "
                    "StreamLAAL_CA %.0f ms (%d talks)", row["k"], row["segment_size"],
                    row["BLEU"], row["chrF"], row["StreamLAAL"], row["StreamLAAL_CA"],
                    row["n_talks"])  # fmt: skip
    print(f"long-form results: {results}")
    print(f"sacrebleu signature: {signature}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
