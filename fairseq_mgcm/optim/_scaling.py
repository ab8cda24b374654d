"""What each fairseq optimizer wrapper does around ``loss.backward()``, done per task loss.

fairseq's wrappers scale the loss before ``backward`` and some set flags after it. The conflict
engine runs several backward passes itself, so it needs the scaled losses and the flags set the
same way: ``FP16Optimizer`` and ``MemoryEfficientFP16Optimizer`` multiply by
``scaler.loss_scale`` (``FP16Optimizer`` then marks its fp32 copies stale with ``_needs_sync``);
``AMPOptimizer`` scales with its ``torch`` ``GradScaler``; plain optimizers do nothing.
"""
from __future__ import annotations

from collections.abc import Mapping

from fairseq.optim import FairseqOptimizer
from fairseq.optim.amp_optimizer import AMPOptimizer
from fairseq.optim.fp16_optimizer import _FP16OptimizerMixin, _MemoryEfficientFP16OptimizerMixin
from torch import Tensor


def scale_losses(optimizer: FairseqOptimizer, losses: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The losses as ``optimizer.backward`` would scale them."""
    if isinstance(optimizer, AMPOptimizer):
        return {name: optimizer._grad_scaler.scale(loss) for name, loss in losses.items()}
    if isinstance(optimizer, (_FP16OptimizerMixin, _MemoryEfficientFP16OptimizerMixin)):
        if optimizer.scaler is None:
            return dict(losses)
        return {name: optimizer.scaler.scale(loss) for name, loss in losses.items()}
    if type(optimizer).backward is not FairseqOptimizer.backward:
        raise NotImplementedError(
            f"{type(optimizer).__name__} has its own backward(); the conflict engine knows how "
            "to stand in for FairseqOptimizer, FP16Optimizer, MemoryEfficientFP16Optimizer and "
            "AMPOptimizer only (use --conflict-method none with this optimizer)"
        )
    return dict(losses)


def after_backward(optimizer: FairseqOptimizer) -> None:
    """The side effects ``optimizer.backward`` has after ``loss.backward()``."""
    if isinstance(optimizer, _FP16OptimizerMixin):
        optimizer._needs_sync = True
