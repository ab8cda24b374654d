"""Data parallelism around several backward passes: one gradient all-reduce, at the end.

torch's ``DistributedDataParallel`` (fairseq ``--ddp-backend c10d``) decides in the *forward*
whether the next backward all-reduces; its hooks would then fire on the first of the engine's
passes with partial gradients. So the forward and all passes run under ``no_sync()`` and the
gradients are all-reduced once afterwards, averaged over the workers as DDP does, when the
trainer wanted a sync (``require_backward_grad_sync`` was True on entry: the last micro-batch
of an update). fairseq's ``LegacyDistributedDataParallel`` (``legacy_ddp``) has no hooks: the
trainer calls its ``all_reduce_grads()`` once per update, so nothing is needed for it.
"""
from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

_BUCKET_BYTES = 25 * 2**20  # torch DDP's default bucket_cap_mb


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside fairseq's ``ModuleProxyWrapper`` and any data-parallel wrapper."""
    while hasattr(model, "module") and isinstance(model.module, nn.Module):
        model = model.module
    return model


def find_torch_ddp(model: nn.Module) -> DistributedDataParallel | None:
    """The torch DDP wrapper in ``model``'s wrapper chain, if any."""
    while True:
        if isinstance(model, DistributedDataParallel):
            return model
        inner = getattr(model, "module", None)
        if not isinstance(inner, nn.Module):
            return None
        model = inner


def all_reduce_mean(params: Iterable[nn.Parameter], group: dist.ProcessGroup | None) -> None:
    """Average ``.grad`` over the workers in buckets of 25 MiB; a missing gradient counts as zero
    (and is materialised), so every worker reduces the same tensors."""
    world = dist.get_world_size(group)
    bucket: list[Tensor] = []
    size = 0
    for p in params:
        if not p.requires_grad:
            continue
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        grad = p.grad
        if bucket and (size + grad.nbytes > _BUCKET_BYTES or grad.dtype != bucket[0].dtype
                       or grad.device != bucket[0].device):
            _reduce_bucket(bucket, world, group)
            bucket, size = [], 0
        bucket.append(grad)
        size += grad.nbytes
    if bucket:
        _reduce_bucket(bucket, world, group)


def _reduce_bucket(bucket: list[Tensor], world: int, group: dist.ProcessGroup | None) -> None:
    """All-reduce the gradients ``bucket`` as one flat tensor, averaged, in place."""
    flat = torch.cat([grad.reshape(-1) for grad in bucket])
    flat.div_(world)
    dist.all_reduce(flat, group=group)
    offset = 0
    for grad in bucket:
        n = grad.numel()
        grad.copy_(flat[offset : offset + n].view_as(grad))
        offset += n
