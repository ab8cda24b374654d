"""Every random stream a forward pass may draw from, captured once and restored per re-run.

A recomputed forward must build the very graph the first one built: the same dropout masks, the
same sampled wait-k lag (drawn with ``torch.rand`` on the CPU), the same anything a user's model
draws with Python's ``random`` or NumPy. So the state of all four generators is taken before
the first forward and put back before each further one. After the last re-run the generators
stand where one forward leaves them, as in ``retain`` mode: the next step draws what it would
have drawn. (SpecAugment and other data augmentation run in the data loader, before the step:
the batch itself is the same object every time.)
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import torch

try:  # NumPy is optional for the engine
    import numpy
except ImportError:  # pragma: no cover - the locked environment has it
    numpy = None  # type: ignore[assignment]


@dataclass(frozen=True)
class RandomState:
    """The CPU and CUDA torch generators, Python's ``random`` and NumPy's global state."""

    torch_cpu: torch.Tensor
    torch_cuda: tuple[torch.Tensor, ...]
    python: Any
    numpy: Any

    @classmethod
    def capture(cls) -> RandomState:
        """The current state (host-side copies: no device synchronisation). CUDA generators are
        read only when CUDA is already initialised, so a CPU run never starts a CUDA context."""
        cuda = tuple(torch.cuda.get_rng_state_all()) if torch.cuda.is_initialized() else ()
        return cls(
            torch_cpu=torch.get_rng_state(),
            torch_cuda=cuda,
            python=random.getstate(),
            numpy=numpy.random.get_state() if numpy is not None else None,
        )

    def restore(self) -> None:
        """Put every generator back where :meth:`capture` found it."""
        torch.set_rng_state(self.torch_cpu)
        if self.torch_cuda:
            torch.cuda.set_rng_state_all(list(self.torch_cuda))
        random.setstate(self.python)
        if numpy is not None and self.numpy is not None:
            numpy.random.set_state(self.numpy)
