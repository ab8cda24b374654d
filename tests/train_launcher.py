"""Run ``fairseq-train`` as one worker of a CPU data-parallel test, then save its parameters.

usage: python tests/train_launcher.py OUT.pt FAIRSEQ-TRAIN-ARGS...

fairseq's pytorch_ddp wrapper passes ``device_ids=[device_id]`` to torch's
DistributedDataParallel, which torch refuses for a CPU module; on CPU the ids are dropped here
(torch DDP then wraps the model as on GPUs). After training, the worker's parameters go to OUT.pt (``{rank}`` in it is replaced by the
worker's ``--distributed-rank``) so that a test can check that the workers stayed in sync.

Fault injection, for the tests of a failing worker: ``MGCM_TEST_FAULTS="RANK:CALL:KIND,..."``
makes the conflict engine's CALL-th backward (1-based) on worker RANK run the primary task's
backward pass and then raise, as a worker that fails between the engine's passes would: KIND
``oom`` raises the RuntimeError a CUDA allocator raises ("CUDA out of memory"), which fairseq's
trainer recovers from; ``error`` raises any other RuntimeError, which ends the worker.
"""
from __future__ import annotations

import os
import sys

from fairseq_mgcm.fast_start import defer_unused_imports

defer_unused_imports()  # before fairseq loads, as python -m fairseq_mgcm.cli does

import torch
from fairseq import trainer as fairseq_trainer
from fairseq.models import distributed_fairseq_model
from torch.nn.parallel import DistributedDataParallel

import fairseq_mgcm
from fairseq_mgcm.conflict import ConflictEngine

fairseq_mgcm.register()  # before fairseq parses --user-dir

FAULT_MESSAGES = {
    "oom": "CUDA out of memory. Tried to allocate 2.00 GiB (injected by tests/train_launcher.py)",
    "error": "injected worker failure (tests/train_launcher.py)",
}


class _CpuDDP(DistributedDataParallel):
    def __init__(self, module, device_ids=None, output_device=None, **kwargs):
        if next(module.parameters()).device.type == "cpu":
            device_ids = output_device = None
        super().__init__(module, device_ids=device_ids, output_device=output_device, **kwargs)


def _rank(argv: list[str]) -> int:
    return int(argv[argv.index("--distributed-rank") + 1]) if "--distributed-rank" in argv else 0


def install_faults(spec: str, rank: int) -> None:
    """Patch :meth:`ConflictEngine.backward` to fail on the calls ``spec`` names for ``rank``."""
    faults = {}
    for item in filter(None, spec.split(",")):
        fault_rank, call, kind = item.split(":")
        if int(fault_rank) == rank:
            faults[int(call)] = FAULT_MESSAGES[kind]
    if not faults:
        return
    original = ConflictEngine.backward
    calls = [0]

    def failing(self, losses, primary):
        calls[0] += 1
        if calls[0] in faults:
            first = losses() if callable(losses) else losses  # the task hands its forward
            first[primary].backward()  # a first pass done, its gradients left behind
            raise RuntimeError(faults[calls[0]])
        return original(self, losses, primary)

    ConflictEngine.backward = failing  # type: ignore[method-assign]


def main() -> None:
    out, argv = sys.argv[1], sys.argv[2:]
    rank = _rank(argv)
    install_faults(os.environ.get("MGCM_TEST_FAULTS", ""), rank)
    distributed_fairseq_model.DistributedDataParallel = _CpuDDP
    trainers = []
    original_init = fairseq_trainer.Trainer.__init__

    def recording_init(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        trainers.append(self)

    fairseq_trainer.Trainer.__init__ = recording_init
    sys.argv = ["fairseq-train", *argv]
    from fairseq_cli import train

    train.cli_main()
    model = trainers[-1].get_model()
    torch.save({name: p.detach().clone() for name, p in model.named_parameters()},
               out.replace("{rank}", str(rank)))


if __name__ == "__main__":
    main()
