"""Data parallelism on CPU: gloo, 2 processes, fairseq's legacy_ddp (and torch DDP, c10d).

Semantics under test (docs/conflict.md): each worker projects its own gradients, micro-batch by
micro-batch; the workers' results are then averaged, once per update, like DDP averages plain
gradients. No all-reduce happens during the engine's backward passes. torch DDP, which
all-reduces inside a backward pass, works with method none and is refused with a conflict
method.
"""
from __future__ import annotations

import pytest
import torch
import torch.multiprocessing as mp
from ddp_worker import UPDATE_FREQ, entry, micro_batch_seed
from optim_testing import ThreeTaskModel, batch, grads

from fairseq_mgcm.conflict import ConflictEngine

WORLD = 2


def _expected(method: str) -> dict[str, torch.Tensor]:
    per_worker = []
    for rank in range(WORLD):
        torch.manual_seed(0)
        model = ThreeTaskModel()
        engine = ConflictEngine(model, method)
        for i in range(UPDATE_FREQ):
            x, targets = batch(micro_batch_seed(rank, i))
            engine.backward(model(x, targets), "st")
        per_worker.append(grads(model))
    return {name: sum(g[name] for g in per_worker) / WORLD for name in per_worker[0]}


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> list[dict]:
    """Every scenario, run once in two spawned workers (spawning costs ~8 s on 2 cores)."""
    tmp_path = tmp_path_factory.mktemp("ddp")
    context = mp.start_processes(
        entry, args=(WORLD, str(tmp_path / "init"), str(tmp_path)),
        nprocs=WORLD, join=False, start_method="spawn")
    for _ in range(120):
        if context.join(timeout=1):
            break
    else:
        for process in context.processes:
            process.kill()
        pytest.fail("DDP workers did not finish in 120 s")
    return [torch.load(tmp_path / f"{rank}.pt", weights_only=False) for rank in range(WORLD)]


@pytest.mark.parametrize("backend, method", [("legacy_ddp", "mgcm"), ("legacy_ddp", "none"),
                                             ("c10d", "none")])
def test_per_worker_projection_then_one_average(backend: str, method: str, results) -> None:
    results = [worker[(backend, method)] for worker in results]
    expected = _expected(method)
    for result in results:
        for name, want in expected.items():
            torch.testing.assert_close(result["grads"][name], want, msg=name)
    # counts: (torch.distributed.all_reduce calls, DDP bucket reductions) after each stage:
    # start, micro-batch 1, micro-batch 2 (the last), the trainer's all_reduce_grads
    counts = results[0]["counts"]
    if backend == "c10d":  # method none: DDP does its usual thing
        assert counts[1][1] == 0 and counts[2][1] >= 1
        # a conflict method on a torch-DDP model is refused, naming the backend to use
        assert "--ddp-backend legacy_ddp" in results[0]["torch_ddp_error"]
    else:  # legacy_ddp: the trainer's all_reduce_grads is the only reduction
        assert counts[0] == counts[1] == counts[2] == (0, 0)
        assert counts[3][0] >= 1
