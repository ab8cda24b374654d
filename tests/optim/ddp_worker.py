"""One data-parallel worker for test_ddp.py (imported by the spawned processes)."""
from __future__ import annotations

import contextlib
from pathlib import Path

import torch
import torch.distributed as dist
from fairseq.distributed import LegacyDistributedDataParallel, ModuleProxyWrapper
from optim_testing import ThreeTaskModel, adam, batch, grads
from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook
from torch.nn.parallel import DistributedDataParallel

from fairseq_mgcm.optim import ConflictAwareBackward

UPDATE_FREQ = 2


def micro_batch_seed(rank: int, i: int) -> int:
    return 10 * rank + i


class _Counter:
    """Counts ``torch.distributed.all_reduce`` calls (ours and legacy_ddp's) and DDP's own
    bucket reductions (through a comm hook)."""

    def __init__(self) -> None:
        self.all_reduce = 0
        self.ddp_buckets = 0
        self._original = dist.all_reduce

        def counting(*args, **kwargs):
            self.all_reduce += 1
            return self._original(*args, **kwargs)

        dist.all_reduce = counting

    def ddp_hook(self, state, bucket):
        self.ddp_buckets += 1
        return allreduce_hook(state, bucket)

    def restore(self) -> None:
        dist.all_reduce = self._original

    def snapshot(self) -> tuple[int, int]:
        return self.all_reduce, self.ddp_buckets


def _wrap(model: torch.nn.Module, backend: str, counter: _Counter) -> torch.nn.Module:
    if backend == "c10d":
        ddp = DistributedDataParallel(model)
        ddp.register_comm_hook(dist.group.WORLD, counter.ddp_hook)
        return ModuleProxyWrapper(ddp)
    return ModuleProxyWrapper(LegacyDistributedDataParallel(model, dist.group.WORLD))


SCENARIOS = [("c10d", "none"), ("legacy_ddp", "mgcm"), ("legacy_ddp", "none")]


def run(rank: int, backend: str, method: str) -> dict:
    """One update of ``UPDATE_FREQ`` micro-batches as fairseq's trainer runs it."""
    torch.manual_seed(0)
    model = ThreeTaskModel()
    counter = _Counter()
    try:
        return _update(rank, backend, method, model, counter)
    finally:
        counter.restore()


def _update(rank: int, backend: str, method: str, model: torch.nn.Module,
            counter: _Counter) -> dict:
    wrapped = _wrap(model, backend, counter)
    optimizer = adam(model.parameters())
    backward = ConflictAwareBackward(method)
    counts = [counter.snapshot()]
    for i in range(UPDATE_FREQ):  # the trainer's delayed-update loop, with its maybe_no_sync()
        trainer_no_sync = wrapped.no_sync() if i < UPDATE_FREQ - 1 else contextlib.nullcontext()
        with trainer_no_sync:
            x, targets = batch(micro_batch_seed(rank, i))
            backward(optimizer, wrapped, wrapped(x, targets))
        counts.append(counter.snapshot())
    optimizer.all_reduce_grads(wrapped)  # the trainer's reduce-grads step
    counts.append(counter.snapshot())
    torch_ddp_error = None
    if backend == "c10d":  # the same model under torch DDP, handed to a conflict method
        x, targets = batch(99)
        try:
            ConflictAwareBackward("mgcm")(optimizer, wrapped, wrapped(x, targets))
        except RuntimeError as error:
            torch_ddp_error = str(error)
    return {"grads": grads(model), "counts": counts, "torch_ddp_error": torch_ddp_error}


def entry(rank: int, world: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank,
                            world_size=world)
    results = {scenario: run(rank, *scenario) for scenario in SCENARIOS}
    torch.save(results, Path(out_dir) / f"{rank}.pt")
    dist.destroy_process_group()
