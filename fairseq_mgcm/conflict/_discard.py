"""Discard: drop an auxiliary gradient on every module where it conflicts with the primary."""
from __future__ import annotations

import torch
from torch import Tensor

from fairseq_mgcm.conflict._rule import GroupRule


class Discard(GroupRule):
    """``g_m <- 0`` when ``<g_m, p_m> < 0`` (``alpha = 0``), else unchanged; ``beta = 0``.

    The crude ablation of MGCM: it removes the conflict by throwing the auxiliary signal away
    instead of keeping its non-conflicting component.
    """

    name = "discard"
    drops_auxiliary = True

    def _coefficients(self, dot: Tensor, primary_sq: Tensor, conflict: Tensor) -> tuple[Tensor, Tensor]:
        alpha = torch.where(conflict, torch.zeros_like(dot), torch.ones_like(dot))
        return alpha, torch.zeros_like(dot)
