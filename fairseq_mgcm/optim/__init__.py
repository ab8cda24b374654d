"""The thin adapter from fairseq's optimizers (fp32, fp16, AMP; DDP) onto ``conflict/``.

>>> from fairseq_mgcm.optim import ConflictAwareBackward
>>> conflict_backward = ConflictAwareBackward(method="mgcm", granularity="module")
>>> with conflict_backward.ddp_scope(model):
...     losses, sample_size, logging_output = criterion.compute_task_losses(model, sample)
...     conflict_backward(optimizer, model, losses, primary="st", update_num=update_num)
"""
from fairseq_mgcm.optim._conflict_backward import ConflictAwareBackward

__all__ = ["ConflictAwareBackward"]
