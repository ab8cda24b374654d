"""The one apply step both schedules end a group with: the rule's ``(alpha, beta)``, as given."""
from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from fairseq_mgcm.conflict._rule import ProjectionRule, Scalar
from fairseq_mgcm.conflict._sums import PairSums
from fairseq_mgcm.conflict._tensor_ops import add_scaled, host_scalars, same_storage, scale

REST = "rest"
"""For :class:`Piece.g`: the auxiliary gradient is whatever ``.grad`` holds besides ``p``."""


@dataclass
class Piece:
    """One parameter of a final group: what its ``.grad`` holds from this call.

    ``p`` is the primary gradient accumulated into ``.grad`` (None: not there); ``g`` is the
    auxiliary gradient accumulated into ``.grad`` (a tensor, None when it is not there, or
    :data:`REST` when ``.grad`` is exactly ``g + p``: the streaming schedule, where ``g`` was
    never held on its own)."""

    param: nn.Parameter
    p: Tensor | None
    g: Tensor | str | None


def apply_rule(rule: ProjectionRule, sums: PairSums, pieces: list[Piece]) -> None:
    """``.grad <- .grad + (alpha - 1) g + beta p`` on every piece, with ``(alpha, beta)`` from
    the group's scalars; nothing when the primary is absent from the group."""
    if sums.primary_sq is None:
        return
    alpha, beta = rule.coefficients(*host_scalars(sums.dot_or_zero(), sums.primary_sq))
    for piece in pieces:
        grad = piece.param.grad
        if grad is not None:
            _apply(grad, alpha, beta, piece.p, piece.g)


def _apply(grad: Tensor, alpha: Scalar, beta: Scalar, p: Tensor | None,
           g: Tensor | str | None) -> None:
    if isinstance(g, str):  # .grad == g + p
        if p is None:  # reachable, yet autograd produced no primary gradient: only g is there
            scale(grad, alpha)
        elif same_storage(grad, p):  # .grad adopted p: there was no g
            scale(grad, 1 + beta)
        else:  # alpha (g + p) + (1 - alpha + beta) p = alpha g + (1 + beta) p
            scale(grad, alpha)
            add_scaled(grad, p, 1 - alpha + beta)
        return
    if p is not None:
        add_scaled(grad, p, beta)
    if g is not None:
        if same_storage(grad, g):  # .grad adopted g: nothing else is there
            scale(grad, alpha)
        else:
            add_scaled(grad, g, alpha - 1)
