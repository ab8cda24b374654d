"""What one call of :meth:`ConflictEngine.backward` observed: a cosine per (module, task pair)."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ModuleConflict:
    """The gradients of two tasks on one module.

    ``tasks`` is ``(reference, other)``: for MGCM and discard the primary task and one auxiliary
    (or the ``+``-joined auxiliaries when they are combined); for PCGrad any ordered pair.
    ``cosine`` is NaN when either gradient is zero or not finite; ``conflict`` is True when the
    two gradients point apart (negative inner product), which is when MGCM projects.
    """

    module: str
    kind: str
    tasks: tuple[str, str]
    cosine: float
    conflict: bool


@dataclass(frozen=True)
class ConflictStats:
    """Per-module conflicts of one backward call, plus what it cost.

    ``held_bytes`` is the peak number of bytes of gradient tensors the engine kept alive beyond
    what ``loss.backward()`` keeps (stashes and per-module temporaries); ``passes`` the number
    of backward passes through the graph, ``forwards`` the number of forward passes run
    (``passes`` with ``memory="recompute"``, else 1).
    """

    method: str
    primary: str
    records: tuple[ModuleConflict, ...] = field(default_factory=tuple)
    held_bytes: int = 0
    passes: int = 1
    forwards: int = 1
