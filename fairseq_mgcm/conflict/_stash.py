"""Several auxiliary gradients, or gradients already in ``.grad``: one stash of shared primary
gradients.

Order: the primary backward first; its pre-hooks keep the incoming primary gradient ``p`` of
every parameter in a group that some auxiliary also reaches (autograd's own tensor, no copy)
and sum ``||p||^2`` per group. Then one backward per auxiliary ``t``: pre-hooks add
``<g_t, p>`` and ``||g_t||^2`` per group; when the last parameter of the group that ``t``
reaches has been accumulated, ``.grad += beta_t * p`` on the group (and, for rules that drop
gradients, ``.grad += (alpha_t - 1) * g_t``, which needs ``g_t`` kept until then). A group's
stash is released after the last auxiliary that reaches it. Extra memory: one stash of the
primary gradients of the groups shared with an auxiliary.
"""
from __future__ import annotations

import functools
from collections.abc import Mapping

from torch import Tensor, nn

from fairseq_mgcm.conflict._apply import Piece, apply_rule
from fairseq_mgcm.conflict._partition import Group
from fairseq_mgcm.conflict._passes import Passes
from fairseq_mgcm.conflict._rule import ProjectionRule
from fairseq_mgcm.conflict._sums import Hooks, PairSums
from fairseq_mgcm.conflict._tensor_ops import HeldBytes, same_storage


class _StashedGroup:
    def __init__(
        self, group: Group, rule: ProjectionRule, primary: list[nn.Parameter],
        tasks: dict[str, list[nn.Parameter]], held: HeldBytes,
    ) -> None:
        self.tasks = tasks
        self.sums = {task: PairSums(group, task) for task in tasks}
        self._rule = rule
        self.primary = primary
        self._held = held
        self._stash: dict[int, Tensor] = {}
        self.primary_sq = PairSums(group, "")
        self._aux_held: dict[int, Tensor] = {}
        self._arrived = dict.fromkeys(tasks, 0)
        self._finished: set[str] = set()

    def on_primary(self, param: nn.Parameter, grad: Tensor) -> None:
        self._stash[id(param)] = grad
        self._held.hold(grad)
        self.primary_sq.add_primary(grad)

    def after_primary(self) -> None:
        """Guard: if ``.grad`` adopted a stashed tensor, later passes would add into the stash."""
        for param in self.primary:
            p = self._stash.get(id(param))
            if p is not None and param.grad is not None and same_storage(param.grad, p):
                self._stash[id(param)] = p.clone()

    def on_aux(self, task: str, param: nn.Parameter, grad: Tensor) -> None:
        self.sums[task].add_aux(grad, self._stash.get(id(param)))
        if self._rule.scales_auxiliary:
            self._aux_held[id(param)] = grad
            self._held.hold(grad)

    def on_aux_accumulated(self, task: str) -> None:
        self._arrived[task] += 1
        if self._arrived[task] == len(self.tasks[task]):
            self.finish(task)

    def finish(self, task: str) -> None:
        if task in self._finished:
            return
        self._finished.add(task)
        sums = self.sums[task]
        sums.primary_sq = self.primary_sq.primary_sq
        primary_ids = {id(p) for p in self.primary}
        params = self.primary + [p for p in self.tasks[task] if id(p) not in primary_ids]
        apply_rule(self._rule, sums, [
            Piece(param, self._stash.get(id(param)), self._aux_held.get(id(param)))
            for param in params
        ])
        for g in self._aux_held.values():
            self._held.release(g)
        self._aux_held.clear()
        if len(self._finished) == len(self.tasks):
            for p in self._stash.values():
                self._held.release(p)
            self._stash.clear()


def _on_aux_accumulated(state: _StashedGroup, task: str, param: nn.Parameter) -> None:
    state.on_aux_accumulated(task)


def stash_backward(
    groups: tuple[Group, ...], rule: ProjectionRule, passes: Passes, primary: str,
    aux: Mapping[str, tuple[str, ...]], held: HeldBytes,
) -> list[PairSums]:
    """``1 + len(aux)`` passes (each auxiliary named by the tasks it sums); ``.grad`` may hold
    earlier micro-batches."""
    reached_primary = passes.reachable((primary,))
    reached = {name: passes.reachable(tasks) for name, tasks in aux.items()}
    states: list[_StashedGroup] = []
    for group in groups:
        primary_params = [p for _, p in group.params if id(p) in reached_primary]
        tasks = {name: [p for _, p in group.params if id(p) in leaves]
                 for name, leaves in reached.items()}
        tasks = {name: params for name, params in tasks.items() if params}
        if primary_params and tasks:
            states.append(_StashedGroup(group, rule, primary_params, tasks, held))

    hooks = Hooks()
    for state in states:
        for p in state.primary:
            hooks.add(p, state.on_primary, None)
    with hooks.active():
        passes.take((primary,)).backward(retain_graph=passes.retain(last=False))
    for state in states:
        state.after_primary()

    names = list(aux)
    for i, name in enumerate(names):
        involved = [state for state in states if name in state.tasks]
        for state in involved:
            for p in state.tasks[name]:
                hooks.add(p, functools.partial(state.on_aux, name),
                          functools.partial(_on_aux_accumulated, state, name))
        with hooks.active():
            passes.take(aux[name]).backward(retain_graph=passes.retain(last=i == len(names) - 1))
        for state in involved:
            state.finish(name)
    return [sums for state in states for sums in state.sums.values()]
