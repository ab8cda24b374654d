"""PCGrad: projecting conflicting gradients (Yu et al. 2020, "Gradient Surgery for Multi-Task
Learning"), at model level."""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from fairseq_mgcm.conflict._method import ConflictMethod
from fairseq_mgcm.conflict._partition import Group
from fairseq_mgcm.conflict._passes import Passes
from fairseq_mgcm.conflict._stats import ConflictStats, ModuleConflict

_CHUNK = 2**22  # columns per fp32 block when the gradients are in half precision


def task_orders(n_tasks: int, generator: torch.Generator) -> list[list[int]]:
    """For each task ``i``, the other tasks in the random order ``i`` is projected against."""
    orders = []
    for i in range(n_tasks):
        others = [j for j in range(n_tasks) if j != i]
        perm = torch.randperm(len(others), generator=generator).tolist()
        orders.append([others[k] for k in perm])
    return orders


def pcgrad_weights(gram: Sequence[Sequence[float]], orders: Sequence[Sequence[int]]) -> list[float]:
    """The PCGrad update as weights on the original task gradients.

    PCGrad sets ``g_i' = g_i`` and, for ``j`` in ``orders[i]``, if ``<g_i', g_j> < 0``:
    ``g_i' <- g_i' - <g_i', g_j> / ||g_j||^2 g_j``; the update is ``sum_i g_i'``. Every
    ``g_i'`` stays a combination ``sum_k c_ik g_k`` of the originals, and
    ``<g_i', g_j> = sum_k c_ik <g_k, g_j>``, so the Gram matrix of the task gradients is all
    the projection needs: the result is ``sum_k w_k g_k`` with ``w_k = sum_i c_ik``.
    """
    n = len(gram)
    weights = [0.0] * n
    for i in range(n):
        coef = [0.0] * n
        coef[i] = 1.0
        for j in orders[i]:
            inner = sum(coef[k] * gram[k][j] for k in range(n))
            if inner < 0 and gram[j][j] > 0:
                coef[j] -= inner / gram[j][j]
        for k in range(n):
            weights[k] += coef[k]
    return weights


def _gram(flat: Tensor) -> Tensor:
    if flat.dtype in (torch.float32, torch.float64):
        return (flat @ flat.T).double()
    gram = torch.zeros(flat.shape[0], flat.shape[0], dtype=torch.float32, device=flat.device)
    for start in range(0, flat.shape[1], _CHUNK):
        block = flat[:, start : start + _CHUNK].float()
        gram += block @ block.T
    return gram.double()


class PCGrad(ConflictMethod):
    """Model-level PCGrad with one flat gradient vector per task and nothing else.

    Each task's gradient comes from its own ``torch.autograd.grad`` call and is copied, parameter
    by parameter, into row ``i`` of a ``[tasks, parameters]`` matrix while autograd's tensors are
    dropped. The projection itself needs only the Gram matrix of the rows
    (:func:`pcgrad_weights`), so no projected copies are made; the update
    ``sum_k w_k g_k`` is added into ``.grad`` parameter by parameter. Memory: the matrix
    (``tasks x parameters``) plus one task's gradients while it is being copied. With
    non-finite gradients the weights are all 1 (the plain sum), so fairseq sees the overflow.

    All tasks are treated alike (``primary`` only puts that task first); ``seed`` starts the
    stream of random projection orders, which advances with every call.
    """

    name = "pcgrad"
    granularity = "model"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self._generator = torch.Generator().manual_seed(seed)

    def __repr__(self) -> str:
        return f"PCGrad(seed={self.seed})"

    def _backward(self, groups: tuple[Group, ...], passes: Passes,
                  primary: str) -> ConflictStats:
        params = [p for group in groups for _, p in group.params]
        records, held = self._project(params, passes, primary)
        return ConflictStats(self.name, primary, records, held, passes=len(passes.live))

    def _project(self, params: Sequence[nn.Parameter], passes: Passes,
                 primary: str) -> tuple[tuple[ModuleConflict, ...], int]:
        """Add the PCGrad update to ``.grad``; return the records and the bytes held."""
        generator = self._generator
        names = sorted(passes.live, key=lambda name: name != primary)  # primary first
        if not params or not names:
            return (), 0
        dtype = params[0].dtype
        if any(p.dtype != dtype for p in params):
            raise ValueError("PCGrad needs all parameters in one dtype to flatten their gradients")
        sizes = [p.numel() for p in params]
        flat = torch.empty(len(names), sum(sizes), dtype=dtype, device=params[0].device)
        reached = [False] * len(params)
        for i, name in enumerate(names):
            grads: list[Tensor | None] = list(torch.autograd.grad(
                passes.take((name,)), params,
                retain_graph=passes.retain(last=i == len(names) - 1), allow_unused=True,
            ))
            offset = 0
            for k, size in enumerate(sizes):
                grad, grads[k] = grads[k], None
                row = flat[i, offset : offset + size]
                if grad is None:
                    row.zero_()
                else:
                    row.copy_(grad.reshape(-1))
                    reached[k] = True
                offset += size
        gram = _gram(flat).cpu()
        gram_list = gram.tolist()
        orders = task_orders(len(names), generator)
        if torch.isfinite(gram).all():
            weights = pcgrad_weights(gram_list, orders)
        else:
            weights = [1.0] * len(names)
        w = torch.tensor(weights, dtype=dtype, device=flat.device)
        offset = 0
        for p, size, touched in zip(params, sizes, reached):
            block = flat[:, offset : offset + size].T  # [size, tasks]
            offset += size
            if not touched:  # no task reaches it: leave .grad as backward() would
                continue
            if p.grad is None:
                p.grad = torch.mv(block, w).view_as(p)
            else:
                p.grad.add_(torch.mv(block, w).view_as(p))
        return _records(names, gram_list), flat.nbytes


def _records(names: list[str], gram: list[list[float]]) -> tuple[ModuleConflict, ...]:
    records = []
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            finite = all(math.isfinite(v) for v in (gram[i][j], gram[i][i], gram[j][j]))
            norm = math.sqrt(gram[i][i] * gram[j][j]) if finite else 0.0
            cosine = gram[i][j] / norm if finite and norm > 0 else math.nan
            conflict = finite and norm > 0 and gram[i][j] < 0
            pair = (names[i], names[j])
            records.append(ModuleConflict("<model>", "model", pair, cosine, conflict))
    return tuple(records)
