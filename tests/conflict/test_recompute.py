"""``memory="recompute"``: the forward again per backward pass gives ``retain``'s gradients (with
dropout, wait-k lag sampling and Python/NumPy draws in the forward), frees each graph before the
next forward, and refuses forwards it cannot repeat."""
from __future__ import annotations

import random
import weakref

import numpy
import pytest
import torch
import torch.nn.functional as F
from conflict_testing import assert_grads_close, grads_of, toy_losses, toy_model, waitk_losses
from conflict_testing import waitk_model
from torch import Tensor, nn

from fairseq_mgcm.conflict import (
    AUX_MODES,
    GRANULARITIES,
    ConflictEngine,
    NotRepeatable,
    StatefulForward,
)

def _noisy(model: nn.Module, seed: int, tasks: tuple[str, ...]):
    """The toy losses with dropout inside the encoder and decoder, and a weight drawn from
    torch, Python's ``random`` and NumPy on each call: two calls differ unless the random
    state is put back in between."""
    for layer in (model.layers[0], model.decoder_layer):
        layer.register_forward_hook(lambda module, args, out: F.dropout(out, 0.3, True))
    base = toy_losses(model, seed, tasks)

    def losses() -> dict[str, Tensor]:
        weight = 1 + torch.rand(()).item() + random.random() + numpy.random.rand()
        every = base()
        return {task: loss * (weight if task != "st" else 1.0) for task, loss in every.items()}

    return losses


def _snapshot() -> tuple:
    return torch.get_rng_state(), random.getstate(), numpy.random.get_state()[1].copy()


def _run(memory: str, method: str, granularity: str, aux_mode: str, tasks, accumulated: bool):
    model = toy_model(seed=3)
    losses = _noisy(model, 3, tasks)
    engine = ConflictEngine(model, method, granularity, aux_mode, seed=7, memory=memory)
    torch.manual_seed(11), random.seed(11), numpy.random.seed(11)
    stats = []
    for _ in range(2 if accumulated else 1):  # the second micro-batch meets filled .grad
        stats.append(engine.backward(losses, "st"))
    after = _snapshot()
    return grads_of(model), stats, after


CONFIGURATIONS = [  # pcgrad and none have neither a granularity nor an auxiliary mode
    *[("mgcm", g, a) for g in GRANULARITIES for a in AUX_MODES],
    *[("discard", g, a) for g in GRANULARITIES for a in AUX_MODES],
    ("pcgrad", "model", "separate"), ("none", "module", "separate"),
]


@pytest.mark.parametrize("accumulated", [False, True], ids=["fresh", "update-freq-2"])
@pytest.mark.parametrize("tasks", [("st", "ctc"), ("st", "ctc", "asr")], ids="+".join)
@pytest.mark.parametrize("method,granularity,aux_mode", CONFIGURATIONS)
def test_recompute_gives_retains_gradients(method, granularity, aux_mode, tasks, accumulated):
    retained, retain_stats, retain_rng = _run("retain", method, granularity, aux_mode, tasks,
                                              accumulated)
    recomputed, stats, rng = _run("recompute", method, granularity, aux_mode, tasks, accumulated)
    assert_grads_close(recomputed, retained, rtol=0, atol=0)  # the same graph, bit for bit
    assert [s.records for s in stats] == [s.records for s in retain_stats]
    assert [s.forwards for s in stats] == [s.passes for s in stats]
    assert all(s.forwards == 1 for s in retain_stats)
    # Afterwards every generator stands where one forward leaves it: the next step is the same.
    assert torch.equal(rng[0], retain_rng[0]) and rng[1] == retain_rng[1]
    assert numpy.array_equal(rng[2], retain_rng[2])


def test_the_noise_is_real() -> None:
    """Without the restored random state the forward differs: the test above can fail."""
    model = toy_model(seed=3)
    losses = _noisy(model, 3, ("st", "ctc"))
    assert losses()["st"].item() != losses()["st"].item()  # dropout masks
    assert losses()["ctc"].item() != losses()["ctc"].item()


@pytest.mark.parametrize("method,granularity", [("mgcm", "module"), ("mgcm", "parameter"),
                                                ("discard", "layer"), ("pcgrad", "model")])
def test_waitk_model_with_dropout_and_sampled_lags(method: str, granularity: str) -> None:
    """The project's model in training mode: dropout 0.3 and multipath wait-k, whose lag (or
    full context) is drawn per forward with ``torch.rand``."""
    grads, draws = {}, {}
    for memory in ("retain", "recompute"):
        model = waitk_model(dropout=0.3, attention_dropout=0.1, activation_dropout=0.1,
                            waitk_lagging=3, waitk_multipath=True)
        model.train()
        losses = waitk_losses(model, seed=2)
        engine = ConflictEngine(model, method, granularity, memory=memory)
        torch.manual_seed(5)
        engine.backward(losses, "st")
        grads[memory], draws[memory] = grads_of(model), torch.rand(3)
    assert_grads_close(grads["recompute"], grads["retain"], rtol=0, atol=0)
    assert torch.equal(draws["recompute"], draws["retain"])


class _Tracked:
    """A tensor saved for backward, counted while autograd still holds it (detached: a saved
    output held with its ``grad_fn`` would be a cycle through C++ that no collector frees)."""

    def __init__(self, tensor: Tensor) -> None:
        self.tensor = tensor.detach()


@pytest.mark.parametrize("method", ["mgcm", "discard", "pcgrad"])
@pytest.mark.parametrize("tasks", [("st", "ctc"), ("st", "ctc", "asr")], ids="+".join)
def test_each_graph_is_freed_before_the_next_forward(method: str, tasks) -> None:
    """What makes the memory: when a further forward starts, nothing the previous forward saved
    for backward is still alive under ``recompute``; under ``retain`` the whole graph is."""
    for memory in ("retain", "recompute"):
        model = toy_model(seed=4)
        base = toy_losses(model, 4, tasks)
        alive: weakref.WeakSet[_Tracked] = weakref.WeakSet()
        alive_at_start: list[int] = []

        def pack(tensor: Tensor) -> _Tracked:
            box = _Tracked(tensor)
            alive.add(box)
            return box

        def losses() -> dict[str, Tensor]:
            alive_at_start.append(len(alive))
            with torch.autograd.graph.saved_tensors_hooks(pack, lambda box: box.tensor):
                return base()

        stats = ConflictEngine(model, method, memory=memory).backward(losses, "st")
        if memory == "recompute":
            assert alive_at_start == [0] * stats.passes
        else:
            assert len(alive_at_start) == 1
        assert len(alive) == 0  # nothing outlives the call either way


def test_recompute_needs_the_forward_not_the_losses() -> None:
    model = toy_model(seed=0)
    losses = toy_losses(model, 0)
    with pytest.raises(TypeError, match="recompute.*forward"):
        ConflictEngine(model, "mgcm", memory="recompute").backward(losses(), "st")
    with pytest.raises(ValueError, match="memory must be one of"):
        ConflictEngine(model, "mgcm", memory="recompile")


def test_a_forward_that_changes_a_buffer_is_refused_before_any_rerun() -> None:
    model = toy_model(seed=0)
    model.norm = nn.BatchNorm1d(6).double()
    base = toy_losses(model, 0, ("st", "ctc"))
    calls = []

    def losses() -> dict[str, Tensor]:
        calls.append(1)
        every = base()
        extra = model.norm(torch.ones(3, 6, dtype=torch.float64)).sum()
        return {"st": every["st"] + extra, "ctc": every["ctc"]}

    with pytest.raises(StatefulForward, match="'norm.num_batches_tracked'.*memory retain"):
        ConflictEngine(model, "mgcm", memory="recompute").backward(losses, "st")
    assert len(calls) == 1 and all(p.grad is None for p in model.parameters())
    model.norm.eval()  # running statistics only read: allowed
    ConflictEngine(model, "mgcm", memory="recompute").backward(losses, "st")


def test_randomness_the_capture_does_not_cover_is_caught() -> None:
    """A private generator advances between the runs: the losses differ, the call raises."""
    model = toy_model(seed=0)
    base = toy_losses(model, 0, ("st", "ctc"))
    own = torch.Generator().manual_seed(0)

    def losses() -> dict[str, Tensor]:
        every = base()
        return {"st": every["st"] * (1 + torch.rand((), generator=own, dtype=torch.float64)),
                "ctc": every["ctc"]}

    with pytest.raises(NotRepeatable, match="relative.*--conflict-memory retain"):
        ConflictEngine(model, "mgcm", memory="recompute").backward(losses, "st")

    names = iter([("st", "ctc"), ("st",)])

    def changing() -> dict[str, Tensor]:
        every = base()
        return {task: every[task] for task in next(names)}

    with pytest.raises(NotRepeatable, match=r"\['st'\], the first \['st', 'ctc'\]"):
        ConflictEngine(model, "mgcm", memory="recompute").backward(changing, "st")
