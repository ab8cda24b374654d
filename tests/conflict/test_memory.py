"""The engine's own accounting of what it holds, against the bounds docs/conflict.md states."""
from __future__ import annotations

import pytest
import torch
from conflict_testing import toy_losses, toy_model
from torch import nn

from fairseq_mgcm.conflict import ConflictEngine, partition


def _reached(model: nn.Module, loss: torch.Tensor) -> set[str]:
    names, params = zip(*model.named_parameters())
    grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    return {n for n, g in zip(names, grads) if g is not None}


def _shared_primary_bytes(model: nn.Module, losses: dict, granularity: str) -> list[int]:
    """Per group shared by the primary and some auxiliary: bytes of its primary gradient."""
    primary = _reached(model, losses["st"])
    aux = set().union(*(_reached(model, loss) for t, loss in losses.items() if t != "st"))
    sizes = []
    for group in partition(model, granularity):
        names = {n for n, _ in group.params}
        if names & primary and names & aux:
            sizes.append(sum(p.nbytes for n, p in group.params if n in primary))
    return sizes


@pytest.mark.parametrize("granularity", ["parameter", "module", "layer"])
def test_streaming_holds_about_one_group(granularity: str) -> None:
    """Two tasks, nothing accumulated: at most the largest shared group's primary gradient."""
    model = toy_model(0)
    losses = toy_losses(model, 0, tasks=("st", "ctc"))
    sizes = _shared_primary_bytes(model, losses(), granularity)
    stats = ConflictEngine(model, "mgcm", granularity).backward(losses(), "st")
    assert stats.passes == 2
    assert 0 < stats.held_bytes <= max(sizes) < sum(sizes)


def test_streaming_at_model_level_holds_the_primary_gradient() -> None:
    model = toy_model(0)
    losses = toy_losses(model, 0, tasks=("st", "ctc"))
    [size] = _shared_primary_bytes(model, losses(), "model")
    stats = ConflictEngine(model, "mgcm", "model").backward(losses(), "st")
    assert stats.held_bytes == size


@pytest.mark.parametrize("granularity", ["parameter", "module", "layer", "model"])
def test_stash_holds_one_stash_of_shared_primary_gradients(granularity: str) -> None:
    """Three tasks projected separately: exactly the shared groups' primary gradients, once."""
    model = toy_model(1)
    losses = toy_losses(model, 1)
    sizes = _shared_primary_bytes(model, losses(), granularity)
    stats = ConflictEngine(model, "mgcm", granularity).backward(losses(), "st")
    assert stats.passes == 3
    assert stats.held_bytes == sum(sizes)


def test_second_micro_batch_uses_the_stash() -> None:
    model = toy_model(2)
    losses = toy_losses(model, 2, tasks=("st", "ctc"))
    engine = ConflictEngine(model, "mgcm")
    first = engine.backward(losses(), "st")
    second = engine.backward(losses(), "st")
    stash = sum(_shared_primary_bytes(model, losses(), "module"))
    assert first.held_bytes < second.held_bytes == stash


def test_combined_auxiliaries_stream() -> None:
    model = toy_model(3)
    losses = toy_losses(model, 3)
    separate = ConflictEngine(model, "mgcm", aux_mode="separate").backward(losses(), "st")
    model.zero_grad(set_to_none=True)
    combined = ConflictEngine(model, "mgcm", aux_mode="combined").backward(losses(), "st")
    assert (combined.passes, separate.passes) == (2, 3)
    assert combined.held_bytes < separate.held_bytes


def test_pcgrad_holds_one_flat_vector_per_task() -> None:
    model = toy_model(4)
    losses = toy_losses(model, 4)
    stats = ConflictEngine(model, "pcgrad").backward(losses(), "st")
    numel = sum(p.numel() for p in model.parameters())
    assert stats.held_bytes == 3 * numel * 8
    assert stats.passes == 3
