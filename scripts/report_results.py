#!/usr/bin/env python
"""Write a recipe's results (markdown) and BLEU-AL plot (PNG), methods side by side.

Inputs:  --exp-dir EXP with, per run, EXP/<method>/ (or EXP/<method>/seed<N>/ with --seeds):
         offline_bleu.txt, generate-<test set>.txt, simul/results.tsv and each run's
         instances.log, train_peak.json, conflict.jsonl (missing pieces show as "-" or are
         listed as missing; the statistics use the seeds that finished and say how many)
Outputs: EXP/results.md (every run; means and spreads over seeds with chrF and cost ratios to
         `none`; sacrebleu paired approximate randomization tests of each method against `none` and of MGCM
         against PCGrad) and EXP/bleu_al.png (mean curve per method, seed spread as error bars);
         the tables are printed too; with long-form runs (run.sh --longform true), their
         table beside the segmented one and EXP/bleu_streamlaal.png (docs/longform.md)
A file that is there but not whole (a torn row, "BLEU = 49.0x", a cut generate output) is an
error naming file and line: exit 2, nothing written.
Usage:   python scripts/report_results.py --exp-dir exp/demo --methods none mgcm
         python scripts/report_results.py --exp-dir exp/cmp --methods none pcgrad mgcm \\
             --seeds 1 2 3
"""
import argparse
import sys
from pathlib import Path

from fairseq_mgcm.atomic_files import write_text
from fairseq_mgcm.longform.report import longform_markdown, plot_bleu_stream_laal
from fairseq_mgcm.recipe.comparison import compare, comparison_markdown
from fairseq_mgcm.recipe.plot import plot_bleu_al
from fairseq_mgcm.recipe.result_files import ResultFileError
from fairseq_mgcm.recipe.results import PAPER_REFERENCE, collect, markdown_table
from fairseq_mgcm.recipe.significance import N_TRIALS


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exp-dir", required=True, type=Path)
    parser.add_argument("--methods", nargs="+", required=True)
    parser.add_argument("--seeds", nargs="+", type=int, default=None,
                        help="the runs are EXP/<method>/seed<N>/ (scripts/run.sh --seeds)")
    parser.add_argument("--test-set", default="tst-COMMON",
                        help="the split decoded (names generate-<test set>.txt)")
    parser.add_argument("--title", default=None)
    parser.add_argument("--trials", type=int, default=N_TRIALS,
                        help="approximate randomization trials per paired test (default "
                        f"{N_TRIALS:,}, sacrebleu's)")
    args = parser.parse_args()
    if args.trials < 1:
        parser.error(f"--trials {args.trials}: must be >= 1")
    if args.seeds is not None and len(set(args.seeds)) != len(args.seeds):
        parser.error(f"--seeds {' '.join(map(str, args.seeds))}: a seed is repeated")

    try:
        results = collect(args.exp_dir, args.methods, args.seeds)
        comparison = compare(results, args.test_set, args.trials)
    except (OSError, ResultFileError) as error:
        print(f"report_results.py: error: {error}", file=sys.stderr)
        return 2
    for path in comparison.missing:
        print(f"missing, left out: {path}", file=sys.stderr)
    note = ("\nReference: Liu et al. (2024) report MGCM's offline BLEU gain over plain multi-task "
            f"training on MuST-C En-De as +{PAPER_REFERENCE['offline_bleu_gain_greedy']} (greedy) "
            f"and +{PAPER_REFERENCE['offline_bleu_gain_beam5']} (beam 5).\n")
    longform = longform_markdown(results)
    text = ("## Runs\n\n" + markdown_table(results)
            + (f"\n## Whole talks (long-form)\n\n{longform}" if longform else "")
            + "\n## Methods compared\n\n" + comparison_markdown(comparison) + note)
    write_text(args.exp_dir / "results.md", text)
    print(text)
    try:
        png = plot_bleu_al(results, args.exp_dir / "bleu_al.png",
                           title=args.title or f"BLEU vs. AL ({args.exp_dir.name})")
        print(f"plot: {png.resolve()}")
    except ValueError as error:
        print(f"no plot: {error}", file=sys.stderr)
    if longform:
        png = plot_bleu_stream_laal(results, args.exp_dir / "bleu_streamlaal.png")
        print(f"long-form plot: {png.resolve()}")
    print(f"table: {(args.exp_dir / 'results.md').resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
