"""Which parameters a loss reaches."""
from __future__ import annotations

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
