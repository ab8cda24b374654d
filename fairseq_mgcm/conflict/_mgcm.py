"""MGCM: modular gradient conflict mitigation (Liu et al. 2024, arXiv:2409.15911)."""
from __future__ import annotations

from torch import Tensor

from fairseq_mgcm.conflict._projection import GroupProjection, where
from fairseq_mgcm.conflict._rule import Scalar


class MGCM(GroupProjection):
    """Project a conflicting auxiliary gradient onto the normal plane of the primary one.

    On a group (module) ``m`` with primary gradient ``p_m`` and auxiliary gradient ``g_m``::

        g_m <- g_m - min(0, <g_m, p_m>) / ||p_m||^2 * p_m

    so ``alpha = 1`` and ``beta = -<g_m, p_m> / ||p_m||^2`` when they conflict, ``beta = 0``
    otherwise. Afterwards ``<g_m, p_m> = 0 >= 0``: the auxiliary task no longer pulls against the
    primary one on that module, and the primary gradient itself is never changed.
    """

    name = "mgcm"

    def _coefficients(self, dot: Scalar, primary_sq: Scalar, conflict: Tensor | bool
                      ) -> tuple[Scalar, Scalar]:
        safe_sq = where(conflict, primary_sq, 1.0)
        return 1.0, where(conflict, -dot / safe_sq, 0.0)
