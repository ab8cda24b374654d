"""The losses a method's backward passes run on: one graph kept for every pass (``retain``), or
the forward run again for each further pass (``recompute``).

A method with separate passes (MGCM and discard: one per task; PCGrad: one per task) needs the
forward graph for each. ``retain`` keeps it alive from the first pass to the last
(``retain_graph=True``). ``recompute`` frees each graph as its backward runs and builds the next
with the forward again, under the random state of the first (:mod:`._random_state`): the same
graph, a forward's compute per further pass. What that frees is the other tasks' own branches
during each pass; the first pass's gradient, held in ``.grad`` while the next pass runs, stays
(measured in ``docs/conflict.md`` section 8).

A re-run that does not give back the first forward's losses (a model drawing randomness the
capture does not cover, or changing its own state in the forward) would give a wrong gradient
silently, so every re-run is compared with the first, and a forward that changes a buffer of the
model (BatchNorm's running statistics: updated once per pass) is refused before any re-run.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence

import torch
from torch import Tensor

from fairseq_mgcm.conflict._graph import reachable_leaves
from fairseq_mgcm.conflict._random_state import RandomState
from fairseq_mgcm.errors import BadValue

MEMORY_MODES = ("retain", "recompute")
"""``retain``: one forward, its graph kept across the passes (the default); ``recompute``: the
forward again for each further pass, each graph freed by its own backward."""

Forward = Callable[[], Mapping[str, Tensor]]
"""A function that runs the forward and returns the task losses (no other reference to them
kept: a reference held outside is a graph that cannot be freed)."""

RELATIVE_TOLERANCE = 1e-4
"""How far a recomputed loss may differ from the first forward's: bitwise equal on the CPU;
on a GPU only kernels that accumulate in a varying order differ, by float rounding. Another
dropout mask or wait-k lag moves a summed loss by far more."""


def memory_mode(memory: object) -> str:
    """``memory`` as one of :data:`MEMORY_MODES` (fairseq configs hold ChoiceEnum members)."""
    memory = str(memory)
    if memory not in MEMORY_MODES:
        raise ValueError(f"memory must be one of {MEMORY_MODES}, got {memory!r}")
    return memory


class NotRepeatable(BadValue):
    """A recomputed forward gave other losses than the first: its gradients would be wrong."""


class StatefulForward(BadValue):
    """The forward changed a buffer of the model: a re-run would change it again."""


def _check(losses: Mapping[str, Tensor]) -> dict[str, Tensor]:
    if not isinstance(losses, Mapping):
        raise TypeError(f"the forward must return a mapping of task losses, got {losses!r}")
    for task, loss in losses.items():
        if not isinstance(loss, Tensor) or loss.numel() != 1:
            raise ValueError(f"loss {task!r} must be a scalar tensor, got {loss!r}")
    return dict(losses)


class Passes:
    """Hands each backward pass its loss; the first forward runs on construction.

    ``source`` is the losses themselves (``retain`` only) or a :data:`Forward`. ``buffers`` are
    the model's named buffers, checked for changes by the first forward in ``recompute`` mode.
    A method calls :meth:`take` once per pass, in order, and backpropagates what it returns
    with ``retain_graph=passes.retain(last)``.
    """

    def __init__(self, source: Mapping[str, Tensor] | Forward, memory: str = "retain",
                 buffers: Iterable[tuple[str, Tensor]] = ()) -> None:
        self.recompute = memory_mode(memory) == "recompute"
        if self.recompute and not callable(source):
            raise TypeError("memory='recompute' runs the forward again for each backward pass: "
                            "pass the forward (a function returning the losses), not the losses")
        self._forward: Forward | None = source if self.recompute else None  # type: ignore
        self._state = RandomState.capture() if self.recompute else None
        watched = [(name, b, b._version) for name, b in buffers] if self.recompute else []
        first = _check(source() if callable(source) else source)
        for name, buffer, version in watched:
            if buffer._version != version:
                raise StatefulForward(
                    f"the forward changed the model's buffer {name!r} (e.g. BatchNorm running "
                    "statistics): recomputing it would change it once per backward pass; use "
                    "memory retain (--conflict-memory retain) with this model")
        self.names = tuple(first)
        self.live = tuple(task for task, loss in first.items() if loss.requires_grad)
        self._losses: dict[str, Tensor] | None = first
        self._first = {task: loss.detach() for task, loss in first.items()} if self.recompute \
            else {}
        self._taken = False
        self._deviation: Tensor | None = None
        self.forwards = 1

    def reachable(self, tasks: Sequence[str]) -> set[int]:
        """The leaves the sum of ``tasks``' losses reaches (the first forward's graph, before
        any pass has been taken)."""
        if self._taken:
            raise RuntimeError("reachable() reads the first forward's graph: call it before take()")
        assert self._losses is not None
        return set().union(*(reachable_leaves(self._losses[task]) for task in tasks))

    def take(self, tasks: Sequence[str]) -> Tensor:
        """The summed loss of ``tasks`` for the next backward pass. In ``recompute`` mode every
        pass after the first runs the forward again, and no reference to the other losses of
        its forward is kept (their graph is freed when the caller drops the returned loss)."""
        if self._taken and self.recompute:
            self._losses = self._rerun()
        self._taken = True
        losses = self._losses
        assert losses is not None
        if self.recompute:
            self._losses = None
        total = losses[tasks[0]]
        for task in tasks[1:]:
            total = total + losses[task]
        return total

    def retain(self, last: bool) -> bool:
        """``retain_graph`` for a pass: only in ``retain`` mode, and not after the last pass."""
        return not self.recompute and not last

    def check_repeatable(self) -> None:
        """Raise :class:`NotRepeatable` if a re-run's losses were not the first forward's (one
        device-to-host copy, only when something was recomputed)."""
        if self._deviation is None:
            return
        deviation = float(self._deviation)
        self._deviation = None
        if not deviation <= RELATIVE_TOLERANCE:  # NaN too
            raise NotRepeatable(
                f"a recomputed forward gave losses {deviation:.3g} (relative) away from the "
                "first forward's: the model draws randomness outside torch, random and numpy, "
                "or its forward depends on state it changes; use memory retain "
                "(--conflict-memory retain)")

    def _rerun(self) -> dict[str, Tensor]:
        assert self._forward is not None and self._state is not None
        self._state.restore()
        losses = _check(self._forward())
        self.forwards += 1
        if tuple(losses) != self.names:
            raise NotRepeatable(f"a recomputed forward returned the losses {list(losses)}, the "
                                f"first {list(self.names)}; use --conflict-memory retain")
        for task, loss in losses.items():
            gap = _relative_gap(loss, self._first[task])
            self._deviation = gap if self._deviation is None else torch.maximum(
                self._deviation, gap)
        return losses


def _relative_gap(new: Tensor, first: Tensor) -> Tensor:
    """``|new - first| / max(|first|, 1e-6)`` as a 0-dim fp64 tensor on the losses' device: 0 for
    equal values (NaN and infinities included), infinite for a NaN against a number."""
    with torch.no_grad():
        new, first = new.detach().double().reshape(()), first.double().reshape(())
        same = (new == first) | (new.isnan() & first.isnan())
        gap = ((new - first).abs() / first.abs().clamp_min(1e-6)).nan_to_num(nan=math.inf)
        return torch.where(same, 0.0, gap)
