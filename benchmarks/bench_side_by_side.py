#!/usr/bin/env python
"""One training on every core, or several side by side on one thread each: which does more work?

``scripts/run.sh --jobs N`` runs N trainings at once, each on nproc/N threads. That pays only if
the trainings together update faster than one training given every core (small models leave
cores idle in synchronisation and small matrix products). This measures both on the same
prepared data with the recipe's own stage 3 and flags, for a fixed number of updates:

- ``one``: a single training, ``OMP_NUM_THREADS=nproc``;
- ``side``: ``--jobs`` trainings at once, ``OMP_NUM_THREADS=nproc/jobs`` each.

It prints, per leg, the command's wall time and the updates per second summed over its trainings
(fairseq's ``ups`` over the timed updates, start-up excluded), and the ratio side / one.

Usage (after a recipe's stage 1 made the data):
    python benchmarks/bench_side_by_side.py --recipe configs/recipes/multi30k.sh \\
        --data-dir exp/multi30k/data [--method none] [--updates 80] [--jobs 2] [--out-dir DIR]
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_UPS = re.compile(r"\| train \| epoch .*?\| ups ([0-9.]+) .*?\| num_updates (\d+)")


def _training(recipe: str, data_dir: Path, exp_dir: Path, method: str, updates: int,
              threads: int) -> subprocess.Popen:
    command = ["bash", "scripts/run.sh", "--recipe", recipe, "--data-dir", str(data_dir),
               "--exp-dir", str(exp_dir), "--methods", method, "--seeds", "", "--jobs", "1",
               "--stage", "3", "--stop-stage", "3",
               "--extra-train-args", f"--max-update {updates} --disable-validation"]
    log = (exp_dir.parent / f"{exp_dir.name}.log").open("w")
    return subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                            env=dict(os.environ, OMP_NUM_THREADS=str(threads)))


def _ups(exp_dir: Path, method: str) -> tuple[float, int]:
    """fairseq's updates per second and update count, from the run's last epoch summary."""
    log = (exp_dir / method / "checkpoints" / "train.log").read_text()
    found = _UPS.findall(log)
    if not found:
        raise SystemExit(f"{exp_dir / method / 'checkpoints' / 'train.log'}: no epoch summary "
                         f"(see {exp_dir}.log)")
    ups, n = found[-1]
    return float(ups), int(n)


def run_leg(name: str, n_runs: int, threads: int, args: argparse.Namespace,
            out: Path) -> dict[str, float]:
    start = time.monotonic()
    dirs = [out / f"{name}{i}" for i in range(n_runs)]
    procs = [_training(args.recipe, args.data_dir, d, args.method, args.updates, threads)
             for d in dirs]
    for proc, d in zip(procs, dirs):
        if proc.wait() != 0:
            raise SystemExit(f"{name}: training failed (see {d}.log)")
    wall = time.monotonic() - start
    measured = [_ups(d, args.method) for d in dirs]
    return {"runs": n_runs, "threads": threads, "wall_s": wall,
            "updates": sum(n for _, n in measured), "ups": sum(u for u, _ in measured)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", default="configs/recipes/multi30k.sh")
    parser.add_argument("--data-dir", type=Path, required=True, help="a recipe's prepared data")
    parser.add_argument("--method", default="none")
    parser.add_argument("--updates", type=int, default=80)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out-dir", type=Path, default=None)
    args = parser.parse_args()
    args.data_dir = args.data_dir.resolve()
    if not (args.data_dir / "config.yaml").is_file():
        parser.error(f"--data-dir {args.data_dir}: no config.yaml (run the recipe's stage 1)")
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        out = (args.out_dir or Path(tmp)).resolve()
        out.mkdir(parents=True, exist_ok=True)
        one = run_leg("one", 1, cores, args, out)
        side = run_leg("side", args.jobs, max(1, cores // args.jobs), args, out)
    print(f"{args.method}, {args.updates} updates per training, {cores} cores")
    print("| leg | trainings x threads | wall (s) | updates | updates/s |")
    print("|---|---|---:|---:|---:|")
    for name, leg in (("one", one), ("side", side)):
        print(f"| {name} | {leg['runs']} x {leg['threads']} | {leg['wall_s']:.0f} | "
              f"{leg['updates']} | {leg['ups']:.2f} |")
    print(f"side / one: x{side['ups'] / one['ups']:.2f} updates/s")


if __name__ == "__main__":
    main()
