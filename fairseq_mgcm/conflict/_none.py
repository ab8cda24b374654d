"""The baseline: the plain sum of the task losses, one backward pass."""
from __future__ import annotations

from torch import Tensor

from fairseq_mgcm.conflict._method import ConflictMethod
from fairseq_mgcm.conflict._partition import Group
from fairseq_mgcm.conflict._stats import ConflictStats


def plain_backward(losses: dict[str, Tensor], primary: str) -> ConflictStats:
    """``sum(losses).backward()``: the update is ``sum_t g_t``; nothing is observed."""
    if losses:
        sum(losses.values()).backward()  # type: ignore[union-attr]
    return ConflictStats(method="none", primary=primary, passes=int(bool(losses)))


class PlainSum(ConflictMethod):
    """``none``: the update is ``sum_t g_t`` (plain multi-task training)."""

    name = "none"

    def _backward(self, groups: tuple[Group, ...], losses: dict[str, Tensor],
                  primary: str) -> ConflictStats:
        return plain_backward(losses, primary)
