"""Run one fairseq-train as several CPU processes (gloo), for the multi-GPU configs on CPU.

fairseq's own launchers assume CUDA: torchrun's path computes ``rank % cuda.device_count()``
and ``--distributed-world-size`` spawns one process per GPU. This starts ``--nprocs``
processes itself, each with ``--distributed-rank``, a shared ``file://`` rendezvous and
``--distributed-no-spawn``, so a config meant for 8 GPUs trains with the same code path
(DDP, all-reduce after the conflict engine's backward passes) on a CPU-only machine.

Usage::

    python -m fairseq_mgcm.recipe.cpu_launch --nprocs 2 -- \\
        python -m fairseq_mgcm.cli train DATA --cpu ...

(run.sh's command: fairseq-train through ``fairseq_mgcm/cli.py``; any command works.)

Rank 0's output goes to stdout; rank r's to ``<save-dir>/train.rank<r>.log``. Exits with the
first non-zero status of any rank (the others are then stopped), else 0.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["launch"]


def _save_dir(command: list[str]) -> Path:
    if "--save-dir" in command:
        return Path(command[command.index("--save-dir") + 1])
    return Path("checkpoints")


def launch(command: list[str], nprocs: int) -> int:
    """Run ``command`` as ``nprocs`` ranks; return the first failing rank's status, else 0."""
    save_dir = _save_dir(command)
    save_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="rendezvous.", dir=save_dir) as rendezvous:
        common = ["--distributed-world-size", str(nprocs), "--distributed-backend", "gloo",
                  "--distributed-init-method", f"file://{Path(rendezvous).resolve()}/init",
                  "--distributed-no-spawn", "--device-id", "0"]
        procs = []
        for rank in range(nprocs):
            out = None if rank == 0 else open(save_dir / f"train.rank{rank}.log", "ab")
            procs.append(subprocess.Popen([*command, *common, "--distributed-rank", str(rank)],
                                          stdout=out, stderr=subprocess.STDOUT if out else None))
        try:
            while True:
                codes = [p.poll() for p in procs]
                failed = [c for c in codes if c not in (None, 0)]
                if failed:
                    for p in procs:
                        if p.poll() is None:
                            p.terminate()
                    for p in procs:
                        p.wait()
                    return failed[0]
                if all(c == 0 for c in codes):
                    return 0
                time.sleep(0.5)
        except KeyboardInterrupt:
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait()
            return 130


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--" not in argv:
        print("usage: python -m fairseq_mgcm.recipe.cpu_launch --nprocs N -- command ...",
              file=sys.stderr)
        return 2
    split = argv.index("--")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nprocs", type=int, required=True)
    args = parser.parse_args(argv[:split])
    if args.nprocs < 1:
        parser.error(f"--nprocs {args.nprocs}: need at least one process")
    return launch(argv[split + 1:], args.nprocs)


if __name__ == "__main__":
    sys.exit(main())
