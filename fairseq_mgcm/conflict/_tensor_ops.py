"""Small tensor helpers: fp32 inner products, in-place updates, and the engine's byte count."""
from __future__ import annotations

import torch
from torch import Tensor


def dot(a: Tensor, b: Tensor) -> Tensor:
    """``<a, b>`` as a 0-dim tensor, accumulated in fp32 (fp64 stays fp64): fp16 gradients carry
    the loss scale and their products would overflow in fp16."""
    if a.dtype not in (torch.float32, torch.float64):
        a, b = a.float(), b.float()
    return torch.dot(a.reshape(-1), b.reshape(-1))


def same_storage(a: Tensor, b: Tensor) -> bool:
    """True when ``b`` is ``a`` under another name (``AccumulateGrad`` may adopt the incoming
    gradient as ``.grad`` instead of copying it)."""
    return a.data_ptr() == b.data_ptr() and a.numel() == b.numel()


class HeldBytes:
    """The engine's own accounting: bytes of gradient tensors it keeps alive, now and at peak."""

    def __init__(self) -> None:
        self.now = 0
        self.peak = 0

    def hold(self, tensor: Tensor) -> None:
        self.now += tensor.nbytes
        self.peak = max(self.peak, self.now)

    def release(self, tensor: Tensor) -> None:
        self.now -= tensor.nbytes


def host_scalars(*values: Tensor) -> tuple[Tensor | float, ...]:
    """On CPU, 0-dim tensors as Python floats (reading them costs nothing there, the rule then
    runs on floats, and updates with a zero coefficient are skipped); on an accelerator,
    unchanged (no host sync)."""
    if values[0].device.type == "cpu":
        return tuple(float(v) for v in values)
    return values


def add_scaled(target: Tensor, source: Tensor, coef: Tensor | float) -> None:
    """``target += coef * source`` in place; nothing to do for the float 0."""
    if isinstance(coef, Tensor):
        target.addcmul_(source, coef)
    elif coef != 0.0:
        target.add_(source, alpha=coef)


def scale(target: Tensor, coef: Tensor | float) -> None:
    """``target *= coef`` in place; nothing to do for the float 1."""
    if isinstance(coef, Tensor) or coef != 1.0:
        target.mul_(coef)
