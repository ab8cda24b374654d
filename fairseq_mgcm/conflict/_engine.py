"""The engine: turns per-task losses into one combined gradient in ``.grad``."""
from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from fairseq_mgcm.conflict._discard import Discard
from fairseq_mgcm.conflict._mgcm import MGCM
from fairseq_mgcm.conflict._none import plain_backward
from fairseq_mgcm.conflict._partition import GRANULARITIES, Group, describe, partition
from fairseq_mgcm.conflict._pcgrad import PCGrad
from fairseq_mgcm.conflict._rule import GroupRule
from fairseq_mgcm.conflict._stash import stash_backward
from fairseq_mgcm.conflict._stats import ConflictStats
from fairseq_mgcm.conflict._streaming import streaming_backward
from fairseq_mgcm.conflict._sums import to_records
from fairseq_mgcm.conflict._tensor_ops import HeldBytes

METHODS = ("none", "mgcm", "pcgrad", "discard")
AUX_MODES = ("separate", "combined")


class ConflictEngine:
    """Gradient-conflict handling for multi-task training, in place of ``loss.backward()``.

    >>> engine = ConflictEngine(model, method="mgcm", granularity="module")
    >>> stats = engine.backward({"st": l_st, "ctc": l_ctc, "asr": l_asr}, primary="st")

    ``backward`` *adds* the combined gradient to each parameter's ``.grad``, as
    ``loss.backward()`` does, so gradients of earlier micro-batches are kept (the projection is
    done per call, i.e. per micro-batch). Methods:

    * ``none``: ``sum(losses).backward()``, one pass.
    * ``mgcm`` (Liu et al. 2024, arXiv:2409.15911): on every group ``m`` of the partition where
      the primary gradient ``p_m`` is non-zero, an auxiliary gradient ``g_m`` with
      ``<g_m, p_m> < 0`` becomes ``g_m - <g_m, p_m> / ||p_m||^2 p_m``; the primary gradient is
      never changed; the update is ``p + sum_t g_t``.
    * ``discard``: like ``mgcm`` but a conflicting ``g_m`` is dropped.
    * ``pcgrad`` (Yu et al. 2020): model level, every task projected against the others.

    ``aux_mode="combined"`` sums the auxiliary losses and projects their joint gradient (one
    backward pass fewer); ``"separate"`` projects each auxiliary on its own (the reference).
    """

    def __init__(
        self,
        model: nn.Module,
        method: str = "mgcm",
        granularity: str = "module",
        aux_mode: str = "separate",
        seed: int = 0,
    ) -> None:
        method, granularity, aux_mode = str(method), str(granularity), str(aux_mode)
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        if granularity not in GRANULARITIES:
            raise ValueError(f"granularity must be one of {GRANULARITIES}, got {granularity!r}")
        if aux_mode not in AUX_MODES:
            raise ValueError(f"aux_mode must be one of {AUX_MODES}, got {aux_mode!r}")
        self.method = method
        self.granularity = granularity
        self.aux_mode = aux_mode
        self._model = model
        self._groups: tuple[Group, ...] | None = None
        self._generator = torch.Generator().manual_seed(seed)

    @property
    def groups(self) -> tuple[Group, ...]:
        """The partition (built on first use; PCGrad always works on the whole model)."""
        if self._groups is None:
            granularity = "model" if self.method == "pcgrad" else self.granularity
            self._groups = partition(self._model, granularity)
        return self._groups

    def describe_partition(self) -> str:
        """The partition as a table (group, kind, tensors, elements)."""
        return describe(self.groups)

    def backward(self, losses: Mapping[str, Tensor], primary: str) -> ConflictStats:
        """Add the combined gradient of ``losses`` to ``.grad``; ``primary`` names the task whose
        gradient is never changed (ignored by ``pcgrad``, which treats all tasks alike)."""
        _check_losses(losses, primary)
        if self.method == "none":
            return plain_backward(losses, primary)
        live = {name: loss for name, loss in losses.items() if loss.requires_grad}
        if self.method == "pcgrad":
            params = [p for group in self.groups for _, p in group.params]
            records, held = PCGrad()(params, live, primary, self._generator)
            return ConflictStats("pcgrad", primary, records, held, passes=len(live))
        aux = {name: loss for name, loss in live.items() if name != primary}
        if primary not in live or not aux:
            return plain_backward(live, primary)
        if self.aux_mode == "combined" and len(aux) > 1:
            aux = {"+".join(aux): sum(aux.values())}
        rule: GroupRule = MGCM() if self.method == "mgcm" else Discard()
        held = HeldBytes()
        fresh = all(p.grad is None for group in self.groups for _, p in group.params)
        if len(aux) == 1 and fresh:
            [(task, aux_loss)] = aux.items()
            sums = streaming_backward(self.groups, rule, live[primary], task, aux_loss, held)
        else:
            sums = stash_backward(self.groups, rule, live[primary], aux, held)
        return ConflictStats(self.method, primary, to_records(sums, primary), held.peak,
                             passes=1 + len(aux))


def _check_losses(losses: Mapping[str, Tensor], primary: str) -> None:
    if primary not in losses:
        raise KeyError(f"primary task {primary!r} is not among the losses {sorted(losses)}")
    for name, loss in losses.items():
        if not isinstance(loss, Tensor) or loss.numel() != 1:
            raise ValueError(f"loss {name!r} must be a scalar tensor, got {loss!r}")
