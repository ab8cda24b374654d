"""What MGCM and discard share: a per-group rule ``g_m <- alpha g_m + beta p_m`` applied from
gradient hooks, in one of two schedules (streaming or stash)."""
from __future__ import annotations

import math
from abc import abstractmethod
from typing import ClassVar

import torch
from torch import Tensor

from fairseq_mgcm.conflict._method import ConflictMethod
from fairseq_mgcm.conflict._none import plain_backward
from fairseq_mgcm.conflict._partition import Group
from fairseq_mgcm.conflict._passes import Passes
from fairseq_mgcm.conflict._rule import Scalar
from fairseq_mgcm.conflict._stash import stash_backward
from fairseq_mgcm.conflict._stats import ConflictStats
from fairseq_mgcm.conflict._streaming import streaming_backward
from fairseq_mgcm.conflict._sums import to_records
from fairseq_mgcm.conflict._tensor_ops import HeldBytes

AUX_MODES = ("separate", "combined")


class GroupProjection(ConflictMethod):
    """A :class:`~fairseq_mgcm.conflict._rule.ProjectionRule` run as a conflict method.

    On every group ``m`` of the partition, with primary gradient ``p_m`` and auxiliary
    gradient ``g_m``, replace ``g_m`` by ``alpha g_m + beta p_m``, where ``(alpha, beta)``
    depend only on ``<g_m, p_m>`` and ``||p_m||^2`` (:meth:`coefficients`). The primary
    gradient itself is never changed; the update is ``p + sum_t g_t'``.

    Because the rule needs two scalars per group, not the vectors, it is applied from gradient
    hooks without copying whole gradients (``_streaming``, ``_stash``). ``aux_mode="combined"``
    sums the auxiliary losses and projects their joint gradient (one backward pass fewer);
    ``"separate"`` projects each auxiliary on its own (the reference).
    """

    scales_auxiliary: ClassVar[bool] = False
    """Whether ``alpha`` can differ from 1; the stash schedule then keeps auxiliary gradients
    until their group is final. A rule that says False must return ``alpha == 1``."""

    def __init__(self, aux_mode: str = "separate") -> None:
        aux_mode = str(aux_mode)
        if aux_mode not in AUX_MODES:
            raise ValueError(f"aux_mode must be one of {AUX_MODES}, got {aux_mode!r}")
        self.aux_mode = aux_mode

    def __repr__(self) -> str:
        return f"{type(self).__name__}(aux_mode={self.aux_mode!r})"

    def coefficients(self, dot: Scalar, primary_sq: Scalar) -> tuple[Scalar, Scalar]:
        """``(alpha, beta)`` from ``<g, p>`` and ``||p||^2``: 0-dim tensors on an accelerator
        (no host sync), Python floats on the CPU; both go through the same code."""
        if isinstance(dot, Tensor) != isinstance(primary_sq, Tensor):
            raise TypeError("dot and primary_sq must both be tensors or both be floats")
        if isinstance(dot, Tensor) and isinstance(primary_sq, Tensor) and (
                dot.dim() != 0 or primary_sq.dim() != 0):
            raise ValueError(f"expected 0-dim tensors, got {tuple(dot.shape)} and "
                             f"{tuple(primary_sq.shape)}")
        alpha, beta = self._coefficients(dot, primary_sq, conflicts(dot, primary_sq))
        if not self.scales_auxiliary and not (isinstance(alpha, float) and alpha == 1.0):
            raise ValueError(f"{type(self).__name__} returned alpha={alpha!r} but does not "
                             "declare scales_auxiliary = True")
        return alpha, beta

    @abstractmethod
    def _coefficients(self, dot: Scalar, primary_sq: Scalar, conflict: Tensor | bool
                      ) -> tuple[Scalar, Scalar]:
        """``(alpha, beta)``, built with :func:`where` so that tensors and floats both work."""

    def _backward(self, groups: tuple[Group, ...], passes: Passes,
                  primary: str) -> ConflictStats:
        aux: dict[str, tuple[str, ...]] = {t: (t,) for t in passes.live if t != primary}
        if primary not in passes.live or not aux:
            return plain_backward(passes, primary)
        if self.aux_mode == "combined" and len(aux) > 1:
            aux = {"+".join(aux): tuple(aux)}
        held = HeldBytes()
        fresh = all(p.grad is None for group in groups for _, p in group.params)
        if len(aux) == 1 and fresh:
            [(name, tasks)] = aux.items()
            sums = streaming_backward(groups, self, passes, primary, name, tasks, held)
        else:
            sums = stash_backward(groups, self, passes, primary, aux, held)
        return ConflictStats(self.name, primary, to_records(sums, primary), held.peak,
                             passes=1 + len(aux))


def conflicts(dot: Scalar, primary_sq: Scalar) -> Tensor | bool:
    """``<g, p> < 0`` where ``p`` is non-zero and everything is finite. A zero primary gradient
    never triggers a projection, and non-finite gradients pass through unchanged (fairseq's
    overflow check then skips the update)."""
    if isinstance(dot, Tensor) and isinstance(primary_sq, Tensor):
        finite = torch.isfinite(dot) & torch.isfinite(primary_sq)
        return finite & (primary_sq > 0) & (dot < 0)
    dot, primary_sq = float(dot), float(primary_sq)
    return math.isfinite(dot) and math.isfinite(primary_sq) and primary_sq > 0 and dot < 0


def where(condition: Tensor | bool, if_true: Scalar, if_false: Scalar) -> Scalar:
    """``torch.where`` for tensors, a plain choice for floats.

    Python floats go to ``torch.where`` as they are: they reach the kernel as arguments, whereas
    ``torch.as_tensor(float, device=cuda)`` would be a blocking host-to-device copy inside the
    backward hooks, several per module and auxiliary (``_tensor_ops.py``: no host sync). A float
    beside a tensor takes the tensor's dtype; two floats give the default dtype.
    """
    if isinstance(condition, Tensor):
        return torch.where(condition, if_true, if_false)
    return if_true if condition else if_false
