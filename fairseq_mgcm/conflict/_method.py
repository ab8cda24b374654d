"""The one abstract base every conflict method derives from."""
from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from typing import ClassVar

from torch import Tensor

from fairseq_mgcm.conflict._partition import Group
from fairseq_mgcm.conflict._passes import Forward, Passes
from fairseq_mgcm.conflict._stats import ConflictStats


class ConflictMethod(ABC):
    """Turns per-task losses into one combined gradient, *added* to each parameter's ``.grad``
    (as ``loss.backward()`` does, so earlier micro-batches are kept).

    ``__call__`` checks its inputs (the primary task is among the losses, every loss is a
    scalar tensor) and hands ``_backward`` a :class:`~fairseq_mgcm.conflict._passes.Passes`: the
    losses of each backward pass, from one retained graph or a recomputed forward. A method
    whose ``granularity`` is set (PCGrad: ``"model"``) always works on that partition.
    """

    name: ClassVar[str]
    granularity: ClassVar[str | None] = None

    def __call__(self, groups: Sequence[Group], losses: Mapping[str, Tensor] | Forward,
                 primary: str, memory: str = "retain",
                 buffers: Iterable[tuple[str, Tensor]] = ()) -> ConflictStats:
        """Add the combined gradient of ``losses`` to ``.grad``; ``primary`` names the task
        whose gradient the modular methods never change. ``losses`` is the losses or a function
        that computes them (needed by ``memory="recompute"``, :mod:`._passes`; ``buffers`` are
        the model's, checked there)."""
        if not all(isinstance(group, Group) for group in groups):
            raise TypeError("groups must be the Group objects of conflict.partition()")
        passes = Passes(losses, memory, buffers)
        if primary not in passes.names:
            raise KeyError(f"primary task {primary!r} is not among the losses "
                           f"{sorted(passes.names)}")
        stats = self._backward(tuple(groups), passes, primary)
        passes.check_repeatable()
        return dataclasses.replace(stats, forwards=passes.forwards)

    @abstractmethod
    def _backward(self, groups: tuple[Group, ...], passes: Passes,
                  primary: str) -> ConflictStats:
        """The method itself: one :meth:`Passes.take` per backward pass, over the tasks in
        ``passes.live`` (those whose loss requires a gradient; the primary may be absent)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
