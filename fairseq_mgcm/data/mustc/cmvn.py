"""Global CMVN statistics (per-dimension mean and std over all training frames).

Accumulated in float64 from per-talk sums while features are computed, so each train split is
read once. Each train split's sums are kept (``.work/cmvn_<split>.npy``); one accumulator then
adds the sums of *every* train split (``train``, ``train-extra``, ...) and saves ``gcmvn.npz``
with arrays ``mean`` and ``std`` (float32), which fairseq's ``global_cmvn`` transform loads.
"""
import io
import zipfile
from pathlib import Path

import numpy as np

from fairseq_mgcm.atomic_files import atomic_path

_VAR_FLOOR = 1e-8
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # fixed, so that equal statistics give equal bytes


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


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
        """``gcmvn.npz`` (an npz as ``np.savez`` writes it, but byte-identical on re-runs)."""
        mean, std = self.stats()
        with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as zf:
            for name, array in (("mean", mean), ("std", std)):
                zf.writestr(zipfile.ZipInfo(f"{name}.npy", _ZIP_TIME), _npy(array))

    def save_sums(self, path: Path) -> None:
        """The raw float64 sums (rows: sum, squared sum, frame count), to add to later."""
        rows = np.stack([self._sum, self._sq_sum, np.full_like(self._sum, self._count)])
        with atomic_path(path) as tmp:
            tmp.write_bytes(_npy(rows))

    def add_saved(self, path: Path) -> None:
        frame_sum, frame_sq_sum, count = np.load(path, allow_pickle=False)
        self.add(frame_sum, frame_sq_sum, int(count[0]))
