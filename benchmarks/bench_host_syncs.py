#!/usr/bin/env python
"""Host synchronisations per conflict-engine backward on CUDA, per method.

A host sync (a ``.item()``, a device-to-host copy, a ``nonzero``) stalls the CPU until the GPU
has caught up, so the next kernels cannot be queued ahead; the engine is meant to need at most
one per backward. PyTorch counts them for us: under ``torch.cuda.set_sync_debug_mode("warn")``
every synchronizing CUDA call raises a warning ("called a synchronizing CUDA operation"), and
the autograd engine replays warnings of its worker threads in the calling thread. For each
method of ``bench_conflict.py`` (same model code, criterion and batch), this runs one warm-up
backward, then counts the warnings of ``--backwards`` more, each on losses computed *before*
the debug mode is switched on (only the engine's backward is counted, not the forward).

On CPU there is nothing to count: the same loop runs (so the code path stays exercised) and the
counts are ``null`` with the reason.

Output (``--json``): ``{"device", "size", "runs": [{"tasks", "method", "granularity",
"aux_mode", "syncs": [per backward] | null}], "max_syncs_per_backward", "at_most_one",
"reason"}``.

usage: python benchmarks/bench_host_syncs.py [--device cuda] [--size s] [--backwards 3]
           [--json syncs.json]
"""
from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_conflict  # noqa: E402  (also puts the repository on sys.path)

from fairseq_mgcm.atomic_files import write_text  # noqa: E402
from fairseq_mgcm.conflict import ConflictEngine  # noqa: E402
from fairseq_mgcm.criterions import StCtcAsrConfig, StCtcAsrCriterion  # noqa: E402

SYNC_WARNING = "synchroniz"  # c10's "called a synchronizing CUDA operation"
CPU_REASON = "no CUDA device: torch.cuda.set_sync_debug_mode counts CUDA host syncs only"


def count_syncs(engine: ConflictEngine, losses: dict, cuda: bool) -> int | None:
    """The host syncs of one ``engine.backward`` (None on CPU, where it just runs)."""
    if not cuda:
        engine.backward(losses, "st")
        return None
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            engine.backward(losses, "st")
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum(SYNC_WARNING in str(w.message) for w in caught)


def run(device: torch.device, size: str, backwards: int) -> dict:
    task = bench_conflict._task()
    torch.manual_seed(0)
    model = bench_conflict.build_model(size, task).to(device).train()
    batch = bench_conflict.make_batch(task, device, 0, size)
    cuda = device.type == "cuda"
    runs, worst = [], 0
    # --conflict-memory retain, the default; recompute adds one copy (its repeatability check)
    # and whatever the re-run forwards themselves synchronise
    for tasks, method, granularity, aux_mode, _ in bench_conflict.configurations(("retain",)):
        criterion = StCtcAsrCriterion(
            StCtcAsrConfig(sentence_avg=False, asr_weight=0.3 if tasks == 3 else 0.0), task)
        engine = ConflictEngine(model, method, granularity, aux_mode, seed=0)
        counts: list[int] = []
        for i in range(backwards + 1):  # the first one warms up
            model.zero_grad(set_to_none=True)
            losses = criterion.compute_task_losses(model, batch)[0]
            count = count_syncs(engine, losses, cuda)
            if i > 0 and count is not None:
                counts.append(count)
        worst = max([worst, *counts])
        runs.append({"tasks": tasks, "method": method, "granularity": granularity,
                     "aux_mode": aux_mode, "syncs": counts if cuda else None})
    return {"device": str(device), "size": size, "backwards": backwards, "runs": runs,
            "max_syncs_per_backward": worst if cuda else None,
            "at_most_one": worst <= 1 if cuda else None,
            "reason": None if cuda else CPU_REASON}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--size", default="s", choices=list(bench_conflict.SIZES),
                        help="model size (bench_conflict.py's)")
    parser.add_argument("--backwards", type=int, default=3, help="counted backwards per method")
    parser.add_argument("--json", type=Path, help="write the counts here")
    args = parser.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: torch sees no CUDA device")
    if args.backwards < 1:
        parser.error(f"--backwards {args.backwards}: must be >= 1")
    result = run(torch.device(args.device), args.size, args.backwards)
    for r in result["runs"]:
        print(f"{r['tasks']} tasks {r['method']:<7} {r['granularity']:<9} {r['aux_mode']:<8} "
              f"host syncs per backward: {r['syncs'] if r['syncs'] is not None else 'n/a'}")
    print(f"max {result['max_syncs_per_backward']}" if result["reason"] is None
          else f"not counted: {result['reason']}")
    if args.json:
        write_text(args.json, json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
