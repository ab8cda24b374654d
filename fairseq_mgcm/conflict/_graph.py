"""Which parameters a loss reaches."""
from __future__ import annotations

from torch import Tensor

from fairseq_mgcm.errors import BadValue


class HiddenParameters(BadValue):
    """A loss's graph holds a reentrant activation checkpoint: the parameters inside it do not
    appear in the graph, so the engine would sum their gradients unprojected."""


def reachable_leaves(loss: Tensor) -> set[int]:
    """``id``s of the leaf tensors whose gradient ``loss.backward()`` would accumulate.

    Walks the autograd graph from ``loss`` to its ``AccumulateGrad`` nodes (a few milliseconds
    for a 12-layer transformer). A task that does not reach a parameter is *absent* there: its
    gradient is not a zero vector that could conflict.

    A reentrant activation checkpoint (``torch.utils.checkpoint(..., use_reentrant=True)``,
    fairseq's ``--checkpoint-activations``) runs its block's backward inside its own node, so
    the block's parameters are not leaves of the graph: MGCM would silently become a plain sum
    there. Such a node raises :class:`HiddenParameters`; non-reentrant checkpointing keeps the
    parameters in the graph and works."""
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
            if type(child).__name__ == "CheckpointFunctionBackward":  # torch's and fairseq's
                raise HiddenParameters(
                    "reentrant activation checkpointing (fairseq's --checkpoint-activations, "
                    "torch.utils.checkpoint with use_reentrant=True) hides the checkpointed "
                    "parameters from the conflict engine; leave the flag out or checkpoint "
                    "with use_reentrant=False")
            variable = getattr(child, "variable", None)
            if variable is not None:
                leaves.add(id(variable))
            else:
                stack.append(child)
    return leaves
