"""The baseline: the plain sum of the task losses, one backward pass."""
from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor

from fairseq_mgcm.conflict._stats import ConflictStats


def plain_backward(losses: Mapping[str, Tensor], primary: str) -> ConflictStats:
    """``sum(losses).backward()``: the update is ``sum_t g_t``; nothing is observed."""
    differentiable = [loss for loss in losses.values() if loss.requires_grad]
    if differentiable:
        sum(differentiable).backward()
    return ConflictStats(method="none", primary=primary, passes=int(bool(differentiable)))
