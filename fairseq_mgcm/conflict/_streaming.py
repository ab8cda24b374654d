"""One auxiliary gradient, nothing accumulated yet: per-module temporaries only.

Order: the auxiliary backward first, into ``.grad``; then the primary backward with hooks. A
parameter's pre-hook sees the incoming primary gradient ``p`` while ``.grad`` still holds the
auxiliary one ``g``, and adds ``<g, p>``, ``||p||^2`` and ``||g||^2`` to its group's scalars,
keeping ``p`` (autograd's own tensor, no copy). When the last parameter of the group that the
primary reaches has been accumulated (``.grad = g + p``), the group is final:
``.grad <- alpha * .grad + (1 - alpha + beta) * p = p + alpha * g + beta * p`` and ``p`` is
released. Extra memory: the primary gradients of the groups in flight, in a transformer about
one module; at ``granularity="model"`` the whole primary gradient.
"""
from __future__ import annotations

from torch import Tensor, nn

from fairseq_mgcm.conflict._apply import REST, Piece, apply_rule
from fairseq_mgcm.conflict._graph import reachable_leaves
from fairseq_mgcm.conflict._partition import Group
from fairseq_mgcm.conflict._passes import Passes
from fairseq_mgcm.conflict._rule import ProjectionRule
from fairseq_mgcm.conflict._sums import Hooks, PairSums
from fairseq_mgcm.conflict._tensor_ops import HeldBytes


class _StreamedGroup:
    def __init__(
        self, group: Group, task: str, rule: ProjectionRule, primary: list[nn.Parameter],
        aux_only: list[nn.Parameter], held: HeldBytes,
    ) -> None:
        self.sums = PairSums(group, task)
        self._rule = rule
        self._primary = primary
        self._aux_only = aux_only
        self._held = held
        self._incoming: dict[int, Tensor] = {}
        self._arrived = 0
        self._finished = False

    def on_primary(self, param: nn.Parameter, grad: Tensor) -> None:
        aux = param.grad
        self.sums.add_primary(grad)
        if aux is not None:
            self.sums.add_aux(aux, grad)
        self._incoming[id(param)] = grad
        self._held.hold(grad)

    def on_accumulated(self, param: nn.Parameter) -> None:
        self._arrived += 1
        if self._arrived == len(self._primary):
            self.finish()

    def finish(self) -> None:
        if self._finished:
            return
        self._finished = True
        for param in self._aux_only:
            if param.grad is not None:
                self.sums.add_aux(param.grad, None)
        pieces = [Piece(param, self._incoming.pop(id(param), None), REST)
                  for param in self._primary + self._aux_only]
        apply_rule(self._rule, self.sums, pieces)
        for piece in pieces:
            if piece.p is not None:
                self._held.release(piece.p)


def streaming_backward(
    groups: tuple[Group, ...], rule: ProjectionRule, passes: Passes, primary: str, task: str,
    aux_tasks: tuple[str, ...], held: HeldBytes,
) -> list[PairSums]:
    """Two passes (``task`` names the sum of ``aux_tasks``); requires every ``.grad`` to be
    ``None`` on entry."""
    passes.take(aux_tasks).backward(retain_graph=passes.retain(last=False))
    primary_loss = passes.take((primary,))
    reached = reachable_leaves(primary_loss)
    states: list[_StreamedGroup] = []
    hooks = Hooks()
    for group in groups:
        primary_params = [p for _, p in group.params if id(p) in reached]
        aux_only = [p for _, p in group.params if p.grad is not None and id(p) not in reached]
        if not primary_params or (
                len(aux_only) == 0 and all(p.grad is None for p in primary_params)):
            continue
        state = _StreamedGroup(group, task, rule, primary_params, aux_only, held)
        for p in primary_params:
            hooks.add(p, state.on_primary, state.on_accumulated)
        states.append(state)
    with hooks.active():
        primary_loss.backward()
    for state in states:
        state.finish()
    return [state.sums for state in states]
