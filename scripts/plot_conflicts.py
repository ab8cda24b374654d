#!/usr/bin/env python
"""Draw a heat map of the gradient-conflict rate per module over training.

Input: the JSON-lines telemetry written by ``--conflict-telemetry-jsonl`` (schema:
``fairseq_mgcm/conflict/telemetry.py``). Output: a PNG with one panel per task pair; rows are
modules, columns bins of update steps, the colour the share of backward calls that conflicted
(drawing: ``fairseq_mgcm/recipe/conflict_map.py``).

usage: python scripts/plot_conflicts.py CONFLICTS.jsonl OUT.png [--bins 50] [--pair ctc]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fairseq_mgcm.recipe.conflict_map import plot_conflict_map


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("jsonl", type=Path, help="telemetry written by --conflict-telemetry-jsonl")
    parser.add_argument("png", type=Path, help="the heat map to write")
    parser.add_argument("--bins", type=int, default=50, help="step bins (columns), default 50")
    parser.add_argument("--pair", action="append", help="task pair to draw (repeatable); "
                        "default: every pair in the file")
    args = parser.parse_args(argv)
    try:
        plot_conflict_map(args.jsonl, args.png, args.bins, args.pair)
    except (OSError, ValueError) as error:
        print(f"plot_conflicts: {error}", file=sys.stderr)
        return 2
    print(args.png)
    return 0


if __name__ == "__main__":
    sys.exit(main())
