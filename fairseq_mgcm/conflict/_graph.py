"""Which parameters a loss reaches, and inner products accumulated in at least fp32."""
from __future__ import annotations

import torch
from torch import Tensor


def reachable_leaves(loss: Tensor) -> set[int]:
    """``id``s of the leaf tensors whose gradient ``loss.backward()`` would accumulate.

    Walks the autograd graph from ``loss`` to its ``AccumulateGrad`` nodes (a few milliseconds
    for a 12-layer transformer). A task that does not reach a parameter is *absent* there: its
    gradient is not a zero vector that could conflict."""
    root = loss.grad_fn
    if root is None:
        return {id(loss)} if loss.requires_grad else set()
    seen = {root}
    stack = [root]
    leaves: set[int] = set()
    while stack:
        node = stack.pop()
        for child, _ in node.next_functions:
            if child is None or child in seen:
                continue
            seen.add(child)
            variable = getattr(child, "variable", None)
            if variable is not None:
                leaves.add(id(variable))
            else:
                stack.append(child)
    return leaves


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
