"""Global CMVN statistics (per-dimension mean and std over all training frames).

Accumulated in float64 from per-talk sums while features are computed, so the train split is
read once. Saved as ``gcmvn.npz`` with arrays ``mean`` and ``std`` (float32), which fairseq's
``global_cmvn`` feature transform loads.
"""
from pathlib import Path

import numpy as np

from fairseq_mgcm.atomic_files import atomic_path

_VAR_FLOOR = 1e-8


class CmvnAccumulator:
    def __init__(self, dim: int) -> None:
        self._sum = np.zeros(dim)
        self._sq_sum = np.zeros(dim)
        self._count = 0

    def add(self, frame_sum: np.ndarray, frame_sq_sum: np.ndarray, n_frames: int) -> None:
        self._sum += frame_sum
        self._sq_sum += frame_sq_sum
        self._count += n_frames

    def stats(self) -> tuple[np.ndarray, np.ndarray]:
        if self._count == 0:
            raise ValueError("no frames to compute CMVN statistics from")
        mean = self._sum / self._count
        var = np.maximum(self._sq_sum / self._count - mean ** 2, _VAR_FLOOR)
        return mean.astype(np.float32), np.sqrt(var).astype(np.float32)

    def save(self, path: Path) -> None:
        mean, std = self.stats()
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:  # a file object, so numpy does not append ".npz"
                np.savez(f, mean=mean, std=std)
