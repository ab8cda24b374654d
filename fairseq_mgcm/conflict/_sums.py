"""Per-(group, auxiliary) running scalars, gradient hooks, and the conflict records from them."""
from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from fairseq_mgcm.conflict._partition import Group
from fairseq_mgcm.conflict._stats import ModuleConflict
from fairseq_mgcm.conflict._tensor_ops import dot

PreHook = Callable[[nn.Parameter, Tensor], None]
PostHook = Callable[[nn.Parameter], None]


def _add(total: Tensor | None, value: Tensor) -> Tensor:
    return value if total is None else total + value


@dataclass
class PairSums:
    """``<g, p>``, ``||p||^2`` and ``||g||^2`` of one auxiliary ``g`` and the primary ``p`` on one
    group, as 0-dim tensors; ``None`` while nothing has arrived (the task is absent there)."""

    group: Group
    task: str
    dot: Tensor | None = None
    primary_sq: Tensor | None = None
    aux_sq: Tensor | None = None

    def add_primary(self, p: Tensor) -> None:
        self.primary_sq = _add(self.primary_sq, dot(p, p))

    def add_aux(self, g: Tensor, p: Tensor | None) -> None:
        self.aux_sq = _add(self.aux_sq, dot(g, g))
        if p is not None:
            self.dot = _add(self.dot, dot(g, p))

    def dot_or_zero(self) -> Tensor:
        assert self.primary_sq is not None
        return self.dot if self.dot is not None else torch.zeros_like(self.primary_sq)


@dataclass
class Hooks:
    """Gradient hooks registered for one backward pass and removed after it."""

    handles: list[torch.utils.hooks.RemovableHandle] = field(default_factory=list)

    def add(self, param: nn.Parameter, before: PreHook, after: PostHook | None) -> None:
        """``before(param, incoming)`` runs before the gradient is added to ``.grad``;
        ``after(param)`` runs after."""
        self.handles.append(param.register_hook(lambda grad: before(param, grad)))
        if after is not None:
            self.handles.append(param.register_post_accumulate_grad_hook(after))

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        try:
            yield
        finally:
            for handle in self.handles:
                handle.remove()
            self.handles.clear()


def to_records(sums: list[PairSums], primary: str) -> tuple[ModuleConflict, ...]:
    """One record per pair where both tasks are present, with one device-to-host copy."""
    present, scalars = [], []
    for s in sums:
        if s.primary_sq is not None and s.aux_sq is not None:
            present.append(s)
            scalars.append(torch.stack([s.dot_or_zero(), s.primary_sq, s.aux_sq]).double())
    if not present:
        return ()
    values = torch.stack(scalars).cpu().tolist()
    records = []
    for s, (d, psq, asq) in zip(present, values):
        finite = all(math.isfinite(v) for v in (d, psq, asq))
        cosine = d / math.sqrt(psq * asq) if finite and psq > 0 and asq > 0 else math.nan
        conflict = finite and psq > 0 and d < 0
        pair = (primary, s.task)
        records.append(ModuleConflict(s.group.name, s.group.kind, pair, cosine, conflict))
    return tuple(records)
