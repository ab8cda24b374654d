"""Key/value caches that grow along time without copying what they already hold.

Streaming inference appends a few frames per call to caches that end up thousands of frames
long; ``torch.cat`` copies the whole cache on every append, so the cost per call would grow
with the prefix. Here a cache is a *view* of the first entries of a larger buffer: appending
writes the new entries after the view and returns a longer view; when the buffer is full, a
buffer of twice the needed size replaces it (one copy, amortised O(1) per appended entry).

Views are never written below their own length, so an older, shorter view of the same buffer
(a decoder snapshot taken before a prediction that is then taken back) stays valid and can be
extended again; that overwrites the entries of the newer views, which are then stale. Under
autograd (gradients enabled and an input requiring them) appending falls back to ``torch.cat``,
since writing into a buffer in place would break the backward pass.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

MIN_CAPACITY = 64


def append(
    buffer: Tensor | None, used: Tensor | None, new: Tensor, dim: int
) -> tuple[Tensor | None, Tensor]:
    """``used`` followed by ``new`` along ``dim``, and the buffer that view lives in.

    ``used`` is None (empty) or a view of the first entries of ``buffer`` along ``dim``, as
    returned by an earlier call. Returns ``(buffer, view)``; ``buffer`` is None when appending
    fell back to ``torch.cat`` (autograd).
    """
    if used is None or used.shape[dim] == 0:
        used = None
    if torch.is_grad_enabled() and (new.requires_grad or (used is not None and used.requires_grad)):
        return None, new if used is None else torch.cat([used, new], dim=dim)
    n_used = 0 if used is None else used.shape[dim]
    n_total = n_used + new.shape[dim]
    if not _fits(buffer, used, new, dim, n_total):
        shape = list(new.shape)
        shape[dim] = max(MIN_CAPACITY, 2 * n_total)
        fresh = new.new_empty(shape)
        if used is not None:
            fresh.narrow(dim, 0, n_used).copy_(used)
        buffer = fresh
    assert buffer is not None
    buffer.narrow(dim, n_used, new.shape[dim]).copy_(new)
    return buffer, buffer.narrow(dim, 0, n_total)


def _fits(buffer: Tensor | None, used: Tensor | None, new: Tensor, dim: int, n_total: int) -> bool:
    """Whether ``used`` + ``new`` can be written into ``buffer`` in place."""
    if buffer is None or buffer.shape[dim] < n_total:
        return False
    if buffer.dtype != new.dtype or buffer.device != new.device:
        return False
    if buffer.is_inference() and not torch.is_inference_mode_enabled():
        return False  # an inference tensor cannot be written outside inference mode
    other = [s for d, s in enumerate(buffer.shape) if d != dim]
    if other != [s for d, s in enumerate(new.shape) if d != dim]:
        return False
    if used is None:
        return True
    return used.data_ptr() == buffer.data_ptr() and used.stride() == buffer.stride()


class KVCache(NamedTuple):
    """Keys and values ``[B, H, T, D]`` of the cached positions, and the buffers they view."""

    key: Tensor
    value: Tensor
    key_buffer: Tensor | None = None
    value_buffer: Tensor | None = None

    @staticmethod
    def extend(cache: KVCache | None, key: Tensor, value: Tensor) -> KVCache:
        """The cache followed by the new ``key``/``value`` positions (time is dim 2).

        Without a cache the keys/values are returned as they are (no buffer yet: a forward pass
        that is never extended copies nothing); the first extension allocates the buffers.
        """
        if cache is None:
            return KVCache(key, value)
        key_buffer, key = append(cache.key_buffer, cache.key, key, dim=2)
        value_buffer, value = append(cache.value_buffer, cache.value, value, dim=2)
        return KVCache(key, value, key_buffer, value_buffer)
