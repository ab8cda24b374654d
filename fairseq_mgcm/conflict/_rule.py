"""The per-group rule shared by MGCM and discard: how an auxiliary gradient changes on a group."""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import ClassVar

import torch
from torch import Tensor

Scalar = Tensor | float


class GroupRule(ABC):
    """On a group with primary gradient ``p`` and auxiliary gradient ``g``, replace ``g`` by
    ``alpha * g + beta * p``, where ``(alpha, beta)`` depend only on ``<g, p>`` and ``||p||^2``.

    Because the rule needs two scalars per group, not the vectors, the engine can apply it from
    gradient hooks without copying whole gradients. ``__call__`` checks its inputs and decides
    whether the group *conflicts* (``<g, p> < 0`` with a non-zero, finite ``p``); subclasses say
    what to do then. The scalars are 0-dim tensors on an accelerator (no host sync) and Python
    floats on the CPU (no tiny tensor operations); both go through the same code.
    """

    name: ClassVar[str]
    drops_auxiliary: ClassVar[bool] = False
    """Whether ``alpha`` can differ from 1 (the engine then keeps auxiliary gradients too)."""

    def __call__(self, dot: Scalar, primary_sq: Scalar) -> tuple[Scalar, Scalar]:
        if isinstance(dot, Tensor) != isinstance(primary_sq, Tensor):
            raise TypeError("dot and primary_sq must both be tensors or both be floats")
        if isinstance(dot, Tensor) and (dot.dim() != 0 or primary_sq.dim() != 0):
            raise ValueError(f"expected 0-dim tensors, got {tuple(dot.shape)} and "
                             f"{tuple(primary_sq.shape)}")
        conflict = conflicts(dot, primary_sq)
        return self._coefficients(dot, primary_sq, conflict)

    @abstractmethod
    def _coefficients(self, dot: Scalar, primary_sq: Scalar, conflict: Tensor | bool
                      ) -> tuple[Scalar, Scalar]:
        """``(alpha, beta)``, built with :func:`where` so that tensors and floats both work."""


def conflicts(dot: Scalar, primary_sq: Scalar) -> Tensor | bool:
    """``<g, p> < 0`` where ``p`` is non-zero and everything is finite. A zero primary gradient
    never triggers a projection, and non-finite gradients pass through unchanged (fairseq's
    overflow check then skips the update)."""
    if isinstance(dot, Tensor):
        finite = torch.isfinite(dot) & torch.isfinite(primary_sq)
        return finite & (primary_sq > 0) & (dot < 0)
    return math.isfinite(dot) and math.isfinite(primary_sq) and primary_sq > 0 and dot < 0


def where(condition: Tensor | bool, if_true: Scalar, if_false: Scalar) -> Scalar:
    """``torch.where`` for tensors, a plain choice for floats."""
    if isinstance(condition, Tensor):
        dtype = next((v.dtype for v in (if_true, if_false) if isinstance(v, Tensor)),
                     torch.float32)
        if_true, if_false = (torch.as_tensor(v, dtype=dtype, device=condition.device)
                             for v in (if_true, if_false))
        return torch.where(condition, if_true, if_false)
    return if_true if condition else if_false
