"""Run ``fairseq-train`` as one worker of a CPU data-parallel test, then save its parameters.

usage: python tests/train_launcher.py OUT.pt FAIRSEQ-TRAIN-ARGS...

fairseq's c10d wrapper passes ``device_ids=[device_id]`` to torch's DistributedDataParallel,
which torch refuses for a CPU module; on CPU the ids are dropped here (torch DDP then runs on
gloo as on GPUs). After training, the worker's parameters go to OUT.pt so that a test can check
that the workers stayed in sync.
"""
from __future__ import annotations

import sys

from fairseq_mgcm.fast_start import defer_unused_imports

defer_unused_imports()  # before fairseq loads, as python -m fairseq_mgcm.cli does

import torch
from fairseq import trainer as fairseq_trainer
from fairseq.models import distributed_fairseq_model
from torch.nn.parallel import DistributedDataParallel

import fairseq_mgcm

fairseq_mgcm.register()  # before fairseq parses --user-dir


class _CpuDDP(DistributedDataParallel):
    def __init__(self, module, device_ids=None, output_device=None, **kwargs):
        if next(module.parameters()).device.type == "cpu":
            device_ids = output_device = None
        super().__init__(module, device_ids=device_ids, output_device=output_device, **kwargs)


def main() -> None:
    out, argv = sys.argv[1], sys.argv[2:]
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
    torch.save({name: p.detach().clone() for name, p in model.named_parameters()}, out)


if __name__ == "__main__":
    main()
