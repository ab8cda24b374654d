"""The per-group rule shared by MGCM and discard: how an auxiliary gradient changes on a group."""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import torch
from torch import Tensor


class GroupRule(ABC):
    """On a group with primary gradient ``p`` and auxiliary gradient ``g``, replace ``g`` by
    ``alpha * g + beta * p``, where ``(alpha, beta)`` depend only on ``<g, p>`` and ``||p||^2``.

    Because the rule needs two scalars per group, not the vectors, the engine can apply it from
    gradient hooks without copying whole gradients. ``__call__`` checks its inputs and decides
    whether the group *conflicts* (``<g, p> < 0`` with a non-zero, finite ``p``); subclasses say
    what to do then. Everything stays a tensor, so CUDA never waits for the host.
    """

    name: ClassVar[str]
    drops_auxiliary: ClassVar[bool] = False
    """Whether ``alpha`` can differ from 1 (the engine then keeps auxiliary gradients too)."""

    def __call__(self, dot: Tensor, primary_sq: Tensor) -> tuple[Tensor, Tensor]:
        if dot.dim() != 0 or primary_sq.dim() != 0:
            raise ValueError(f"expected 0-dim tensors, got {tuple(dot.shape)} and "
                             f"{tuple(primary_sq.shape)}")
        conflict = conflicts(dot, primary_sq)
        return self._coefficients(dot, primary_sq, conflict)

    @abstractmethod
    def _coefficients(self, dot: Tensor, primary_sq: Tensor, conflict: Tensor) -> tuple[Tensor, Tensor]:
        """``(alpha, beta)`` as 0-dim tensors; ``conflict`` is a 0-dim bool tensor."""


def conflicts(dot: Tensor, primary_sq: Tensor) -> Tensor:
    """``<g, p> < 0`` where ``p`` is non-zero and everything is finite. A zero primary gradient
    never triggers a projection, and non-finite gradients pass through unchanged (fairseq's
    overflow check then skips the update)."""
    finite = torch.isfinite(dot) & torch.isfinite(primary_sq)
    return finite & (primary_sq > 0) & (dot < 0)
