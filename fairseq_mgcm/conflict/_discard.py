"""Discard: drop an auxiliary gradient on every module where it conflicts with the primary."""
from __future__ import annotations

from torch import Tensor

from fairseq_mgcm.conflict._projection import GroupProjection, where
from fairseq_mgcm.conflict._rule import Scalar


class Discard(GroupProjection):
    """``g_m <- 0`` when ``<g_m, p_m> < 0`` (``alpha = 0``), else unchanged; ``beta = 0``.

    The crude ablation of MGCM: it removes the conflict by throwing the auxiliary signal away
    instead of keeping its non-conflicting component.
    """

    name = "discard"
    scales_auxiliary = True

    def _coefficients(self, dot: Scalar, primary_sq: Scalar, conflict: Tensor | bool
                      ) -> tuple[Scalar, Scalar]:
        return where(conflict, 0.0, 1.0), 0.0
