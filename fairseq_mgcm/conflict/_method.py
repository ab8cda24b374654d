"""The one abstract base every conflict method derives from."""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import ClassVar

from torch import Tensor

from fairseq_mgcm.conflict._partition import Group
from fairseq_mgcm.conflict._stats import ConflictStats


class ConflictMethod(ABC):
    """Turns per-task losses into one combined gradient, *added* to each parameter's ``.grad``
    (as ``loss.backward()`` does, so earlier micro-batches are kept).

    ``__call__`` checks its inputs (the primary task is among the losses, every loss is a
    scalar tensor) and passes the losses that require a gradient on to ``_backward``. A method
    whose ``granularity`` is set (PCGrad: ``"model"``) always works on that partition.
    """

    name: ClassVar[str]
    granularity: ClassVar[str | None] = None

    def __call__(self, groups: Sequence[Group], losses: Mapping[str, Tensor],
                 primary: str) -> ConflictStats:
        """Add the combined gradient of ``losses`` to ``.grad``; ``primary`` names the task
        whose gradient the modular methods never change."""
        if primary not in losses:
            raise KeyError(f"primary task {primary!r} is not among the losses {sorted(losses)}")
        for task, loss in losses.items():
            if not isinstance(loss, Tensor) or loss.numel() != 1:
                raise ValueError(f"loss {task!r} must be a scalar tensor, got {loss!r}")
        if not all(isinstance(group, Group) for group in groups):
            raise TypeError("groups must be the Group objects of conflict.partition()")
        live = {task: loss for task, loss in losses.items() if loss.requires_grad}
        return self._backward(tuple(groups), live, primary)

    @abstractmethod
    def _backward(self, groups: tuple[Group, ...], losses: dict[str, Tensor],
                  primary: str) -> ConflictStats:
        """The method itself; ``losses`` all require a gradient (the primary may be absent)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
