"""The small API a task's ``train_step`` uses to hand per-task losses to the optimizer."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Protocol

from fairseq.optim import FairseqOptimizer
from torch import Tensor, nn

from fairseq_mgcm.conflict import ConflictStats, Forward
from fairseq_mgcm.optim._optimizer import ConflictAwareOptimizer

_INNER = ("fp32_optimizer", "wrapped_optimizer", "_optimizer", "base")


class MultitaskBackward(Protocol):
    def __call__(self, losses: Mapping[str, Tensor] | Forward, primary: str,
                 update_num: int | None = None) -> ConflictStats: ...


def find_conflict_aware(optimizer: object) -> ConflictAwareOptimizer | None:
    """The :class:`ConflictAwareOptimizer` inside fairseq's wrapper chain (``FP16Optimizer``
    and ``AMPOptimizer`` hold it as ``fp32_optimizer``, ``MemoryEfficientFP16Optimizer`` as
    ``wrapped_optimizer``, BMUF as ``_optimizer``), or None."""
    seen: set[int] = set()
    while optimizer is not None and id(optimizer) not in seen:
        if isinstance(optimizer, ConflictAwareOptimizer):
            return optimizer
        seen.add(id(optimizer))
        optimizer = next((getattr(optimizer, name) for name in _INNER
                          if isinstance(getattr(optimizer, name, None), FairseqOptimizer)),
                         None)
    return None


@contextlib.contextmanager
def multitask_backward(optimizer: FairseqOptimizer, model: nn.Module
                       ) -> Iterator[MultitaskBackward]:
    """Enclose a task's forward and backward::

        with multitask_backward(optimizer, model) as backward:
            # the forward returns {"st": ..., "ctc": ...}
            backward(lambda: criterion.compute_task_losses(model, sample)[0],
                     primary="st", update_num=update_num)

    ``backward`` takes the forward as a function (run once, or once per backward pass under
    ``--conflict-memory recompute``) or, for ``retain`` only, the losses themselves.

    With ``--optimizer conflict_aware`` the losses go to its conflict engine (scaled as the
    fp16/AMP wrapper would scale them; data parallelism is ``legacy_ddp``'s one all-reduce per
    update, after the engine). With any other optimizer it is
    ``optimizer.backward(sum(losses))``. Task names are free: any key other than ``primary``
    is an auxiliary task.
    """
    wrapper = find_conflict_aware(optimizer)
    if wrapper is None:
        def plain(losses: Mapping[str, Tensor] | Forward, primary: str,
                  update_num: int | None = None) -> ConflictStats:
            if callable(losses):
                losses = losses()
            if primary not in losses:
                raise KeyError(f"primary task {primary!r} is not among the losses "
                               f"{sorted(losses)}")
            optimizer.backward(sum(losses.values()))
            return ConflictStats("none", primary)

        yield plain
        return
    engine = wrapper.conflict_backward

    def conflict_aware(losses: Mapping[str, Tensor] | Forward, primary: str,
                       update_num: int | None = None) -> ConflictStats:
        return engine(optimizer, model, losses, primary=primary, update_num=update_num)

    yield conflict_aware
