"""The contract the hook schedules (``_streaming``, ``_stash``) and their apply step (``_apply``)
need from a per-group rule: two coefficients from two scalars, and whether the auxiliary
gradient is ever scaled.

:class:`~fairseq_mgcm.conflict._projection.GroupProjection` implements it and calls the
schedules; the schedules depend on this protocol, not on that class, so imports run one way
(``_projection`` -> schedules -> ``_apply`` -> ``_rule``).
"""
from __future__ import annotations

from typing import ClassVar, Protocol

from torch import Tensor

Scalar = Tensor | float
"""A 0-dim tensor (accelerators: no host sync) or a Python float (CPU)."""


class ProjectionRule(Protocol):
    """``g_m <- alpha g_m + beta p_m`` on a group, with ``(alpha, beta)`` from ``<g_m, p_m>``
    and ``||p_m||^2``."""

    scales_auxiliary: ClassVar[bool]
    """Whether ``alpha`` can differ from 1 (the stash schedule then keeps ``g_m``)."""

    def coefficients(self, dot: Scalar, primary_sq: Scalar) -> tuple[Scalar, Scalar]:
        """``(alpha, beta)`` for one group."""
        ...
