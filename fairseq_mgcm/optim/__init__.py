"""The fairseq side of the conflict engine: the registered optimizer wrapper
``conflict_aware`` (a base fairseq optimizer plus ``conflict/``'s engine) and the thin adapter
that scales losses for fairseq's fp16/AMP wrappers (data parallelism: ``legacy_ddp``).

In a task's ``train_step``::

    from fairseq_mgcm.optim import multitask_backward

    with multitask_backward(optimizer, model) as backward:
        backward(lambda: criterion.compute_task_losses(model, sample)[0], primary="st",
                 update_num=update_num)

``backward`` takes the forward as a function, run once per backward pass under
``--conflict-memory recompute`` (once under the default ``retain``, which also takes the losses).
On the command line: ``--optimizer conflict_aware --base-optimizer adam --conflict-method mgcm``.
"""
from fairseq_mgcm.optim._config import BASE_OPTIMIZERS, ConflictAwareConfig
from fairseq_mgcm.optim._conflict_backward import ConflictAwareBackward
from fairseq_mgcm.optim._multitask import MultitaskBackward, find_conflict_aware, multitask_backward
from fairseq_mgcm.optim._optimizer import ConflictAwareOptimizer

__all__ = [
    "BASE_OPTIMIZERS",
    "ConflictAwareBackward",
    "ConflictAwareConfig",
    "ConflictAwareOptimizer",
    "MultitaskBackward",
    "find_conflict_aware",
    "multitask_backward",
]
