#!/usr/bin/env python
"""Run fairseq-train (``fairseq_mgcm.cli train``) in this process and record its peak memory.

``torch.cuda.max_memory_allocated`` can only be read inside the process that allocated, so the
training runs here rather than in a child. fairseq resets CUDA's peak counter after every update
(to log ``gb_free``), which would leave only the last update's peak at the end; the reset is
wrapped so that the running maximum is kept first. On CPU the figure is the process's peak
resident set size (``ru_maxrss``, which includes torch and fairseq themselves, about 0.5 GB).

The record (JSON): ``returncode``, ``wall_s``, ``peak_mib``, ``peak_kind``
(``cuda_max_memory_allocated`` or ``cpu_peak_rss``) and ``error`` (the exception's last line,
or null). fairseq's own output goes to stdout/stderr as usual.

usage: python benchmarks/train_in_process.py RECORD.json -- DATA --user-dir fairseq_mgcm ...
"""
from __future__ import annotations

import json
import resource
import sys
import time
import traceback
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fairseq_mgcm import cli  # noqa: E402
from fairseq_mgcm.atomic_files import write_text  # noqa: E402


class CudaPeak:
    """The peak of ``max_memory_allocated`` over the whole run, across fairseq's resets."""

    def __init__(self) -> None:
        self.peak = 0
        self._reset = torch.cuda.reset_peak_memory_stats

    def install(self) -> None:
        torch.cuda.reset_peak_memory_stats = self._keeping_reset

    def _keeping_reset(self, device: torch.device | str | int | None = None) -> None:
        self.peak = max(self.peak, torch.cuda.max_memory_allocated(device))
        self._reset(device)

    def read(self) -> int:
        return max(self.peak, torch.cuda.max_memory_allocated())


def run(record: Path, fairseq_args: list[str]) -> int:
    cuda = torch.cuda.is_available() and "--cpu" not in fairseq_args
    meter = CudaPeak() if cuda else None
    if meter is not None:
        meter.install()
    start, error, returncode = time.monotonic(), None, 0
    try:
        cli.main(["train", *fairseq_args])
    except SystemExit as exit_:  # argparse and fairseq's checks end this way
        returncode = exit_.code if isinstance(exit_.code, int) else 1
        error = None if returncode == 0 else f"exit {exit_.code}"
    except Exception as exc:  # recorded, then the exit status says it failed
        traceback.print_exc()
        returncode, error = 1, f"{type(exc).__name__}: {exc}".splitlines()[0]
    peak = (meter.read() if meter is not None
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)  # Linux: KiB
    write_text(record, json.dumps({
        "returncode": returncode, "wall_s": round(time.monotonic() - start, 2),
        "peak_mib": round(peak / 2**20, 1),
        "peak_kind": "cuda_max_memory_allocated" if cuda else "cpu_peak_rss", "error": error,
    }, indent=1) + "\n")
    return returncode


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) < 3 or argv[1] != "--":
        print("usage: python benchmarks/train_in_process.py RECORD.json -- DATA [flags]",
              file=sys.stderr)
        return 2
    return run(Path(argv[0]), argv[2:])


if __name__ == "__main__":
    sys.exit(main())
