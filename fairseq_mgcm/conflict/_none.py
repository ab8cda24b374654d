"""The baseline: the plain sum of the task losses, one backward pass."""
from __future__ import annotations

from fairseq_mgcm.conflict._method import ConflictMethod
from fairseq_mgcm.conflict._partition import Group
from fairseq_mgcm.conflict._passes import Passes
from fairseq_mgcm.conflict._stats import ConflictStats


def plain_backward(passes: Passes, primary: str) -> ConflictStats:
    """``sum(losses).backward()``: the update is ``sum_t g_t``; nothing is observed."""
    if passes.live:
        passes.take(passes.live).backward()
    return ConflictStats(method="none", primary=primary, passes=int(bool(passes.live)))


class PlainSum(ConflictMethod):
    """``none``: the update is ``sum_t g_t`` (plain multi-task training)."""

    name = "none"

    def _backward(self, groups: tuple[Group, ...], passes: Passes,
                  primary: str) -> ConflictStats:
        return plain_backward(passes, primary)
