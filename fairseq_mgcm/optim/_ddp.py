"""Data parallelism around several backward passes: which fairseq backends can hold the engine.

The engine runs one backward pass per task group and compares each worker's whole per-task
gradients. fairseq's ``legacy_ddp`` (``LegacyDistributedDataParallel``) has no autograd hooks:
the trainer calls its ``all_reduce_grads()`` once per update, after every pass of every
micro-batch, so each worker projects its own gradients and the results are averaged, as DDP
averages plain gradients. torch's ``DistributedDataParallel`` (fairseq's default
``pytorch_ddp``, alias ``c10d``) all-reduces from hooks during the *first* backward pass, with
partial gradients; running everything under ``no_sync()`` and reducing by hand would bypass
its buckets, comm hooks, buffer broadcast and unused-parameter handling, and a worker that
failed between the passes would leave the others waiting in the hand-made all-reduce. So with a
conflict method these backends are refused when the run is distributed, pointing to
``legacy_ddp``; ``fully_sharded`` (shards the gradients) and ``slowmo`` (averages parameters
between steps) always are.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

from fairseq.distributed import LegacyDistributedDataParallel
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from fairseq_mgcm.errors import BadValue

# fully_sharded shards the gradients the engine compares across workers; slowmo averages the
# parameters itself between steps: neither gives the engine each task's whole gradient.
SHARDING_BACKENDS = ("fully_sharded", "slowmo")
# torch DDP all-reduces inside the first of the engine's backward passes (see above).
HOOKED_BACKENDS = ("pytorch_ddp", "c10d")


def refuse_backend(method: str, backend: str | None, world_size: int = 1) -> None:
    """A conflict method under a data-parallel backend it cannot work with: one line naming
    ``--ddp-backend``. Single-process runs are never wrapped, so only sharding is refused there
    (fairseq's default ``pytorch_ddp`` stays usable on one GPU)."""
    if method == "none" or backend is None:
        return
    if backend in SHARDING_BACKENDS:
        raise BadValue(f"--ddp-backend {backend} cannot be used with --conflict-method {method} "
                       "(it shards or averages what the engine compares); use --ddp-backend "
                       "legacy_ddp")
    if backend in HOOKED_BACKENDS and world_size > 1:
        raise BadValue(f"--ddp-backend {backend} (fairseq's default) cannot be used with "
                       f"--conflict-method {method} on {world_size} workers (torch DDP "
                       "all-reduces during the first of the method's backward passes); use "
                       "--ddp-backend legacy_ddp, which all-reduces once per update after them")


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


def install_legacy_ddp_no_sync_fix() -> None:
    """Make ``legacy_ddp``'s ``no_sync()`` restore gradient reduction when its block raises.

    fairseq 0.12's version sets ``accumulate_grads`` and restores it after a bare ``yield``:
    an out-of-memory error in a micro-batch that is not the update's last (which the trainer
    recovers from) leaves that worker skipping every later all-reduce while the others enter
    it, a collective mismatch that crashes gloo and can hang NCCL. The engine's several
    backward passes make such an error likelier. Idempotent.
    """
    if getattr(LegacyDistributedDataParallel.no_sync, "_mgcm_restores", False):
        return

    @contextlib.contextmanager
    def no_sync(self: LegacyDistributedDataParallel) -> Iterator[None]:
        before = self.accumulate_grads
        self.accumulate_grads = True
        try:
            yield
        finally:
            self.accumulate_grads = before

    no_sync._mgcm_restores = True  # type: ignore[attr-defined]
    LegacyDistributedDataParallel.no_sync = no_sync
