#!/usr/bin/env python
"""Write a recipe's results table (markdown) and BLEU-AL plot (PNG), methods side by side.

Inputs:  --exp-dir EXP with EXP/<method>/{offline_bleu.txt, simul/results.tsv,
         train_peak.json, conflict.jsonl} for each of --methods (missing pieces show as "-")
Outputs: EXP/results.md and EXP/bleu_al.png; the table is printed too
Usage:   python scripts/report_results.py --exp-dir exp/demo --methods none mgcm
"""
import argparse
import sys
from pathlib import Path

from fairseq_mgcm.recipe.plot import plot_bleu_al
from fairseq_mgcm.recipe.results import PAPER_REFERENCE, collect, markdown_table


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exp-dir", required=True, type=Path)
    parser.add_argument("--methods", nargs="+", required=True)
    parser.add_argument("--title", default=None)
    args = parser.parse_args()

    results = collect(args.exp_dir, args.methods)
    table = markdown_table(results)
    note = ("\nReference: Liu et al. (2024) report MGCM's offline BLEU gain over plain multi-task "
            f"training on MuST-C En-De as +{PAPER_REFERENCE['offline_bleu_gain_greedy']} (greedy) "
            f"and +{PAPER_REFERENCE['offline_bleu_gain_beam5']} (beam 5).\n")
    (args.exp_dir / "results.md").write_text(table + note)
    print(table)
    try:
        png = plot_bleu_al(results, args.exp_dir / "bleu_al.png",
                           title=args.title or f"BLEU vs. AL ({args.exp_dir.name})")
        print(f"plot: {png.resolve()}")
    except ValueError as error:
        print(f"no plot: {error}", file=sys.stderr)
    print(f"table: {(args.exp_dir / 'results.md').resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
