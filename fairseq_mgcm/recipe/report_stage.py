"""Stage 7 of scripts/run.sh: each run's conflict heat map, then the results table and plot.

Redone only when something changed: a heat map when its run's telemetry is newer than it,
the table when the runs, seeds or test set differ from the marker's record or any run's
outputs are newer than the marker. It reads every run so far (all seeds), so under ``--jobs``
it is called after each run finishes; a run that has not finished is reported as missing.

Usage::

    python -m fairseq_mgcm.recipe.report_stage --exp-dir EXP --methods M... \\
        [--seeds N...] [--test-set tst-COMMON]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from fairseq_mgcm import markers
from fairseq_mgcm.recipe.matrix import Run, run_matrix

__all__ = ["main", "report_inputs"]

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


def report_inputs(runs: list[Run], test_set: str) -> list[Path]:
    """The files of every run that the table is made from (those that exist)."""
    names = ("simul/results.tsv", "longform/results.tsv", "offline_bleu.txt",
             f"generate-{test_set}.txt", "train_peak.json", "conflict.jsonl")
    return [run.folder / name for run in runs for name in names if (run.folder / name).exists()]


def _log(message: str) -> None:
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} (report_stage.py) {message}", file=sys.stderr,
          flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--exp-dir", required=True, type=Path)
    parser.add_argument("--methods", nargs="+", required=True)
    parser.add_argument("--seeds", nargs="*", default=[])
    parser.add_argument("--test-set", default="tst-COMMON")
    args = parser.parse_args(argv)
    runs = run_matrix(args.exp_dir, args.methods, args.seeds or None, "")
    for run in runs:
        telemetry, png = run.folder / "conflict.jsonl", run.folder / "conflicts.png"
        if telemetry.is_file() and telemetry.stat().st_size and not markers.up_to_date(
                png, [telemetry]):
            subprocess.run([sys.executable, str(SCRIPTS / "plot_conflicts.py"), str(telemetry),
                            str(png)], check=True)
    what = f"{' '.join(args.methods)} seeds {' '.join(args.seeds) or 'none'} {args.test_set}"
    marker = args.exp_dir / ".stage7_results.done"
    inputs = report_inputs(runs, args.test_set)
    if markers.is_done(marker, what) and markers.up_to_date(marker, inputs):
        _log("Stage 7: results are up to date")
        return 0
    # The marker takes the time the inputs were read, not when the table was written: a run
    # finishing meanwhile (--jobs) is then newer than it, and the next report includes it.
    pending = marker.with_name(marker.name + ".tmp")
    markers.mark_done(pending, what)
    seeds = ["--seeds", *args.seeds] if args.seeds else []
    subprocess.run([sys.executable, str(SCRIPTS / "report_results.py"), "--exp-dir",
                    str(args.exp_dir), "--methods", *args.methods, "--test-set", args.test_set,
                    *seeds], check=True)
    os.replace(pending, marker)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except subprocess.CalledProcessError as error:
        _log(f"ERROR: stage 7: {error.cmd[1]} failed (exit {error.returncode})")
        sys.exit(1)
