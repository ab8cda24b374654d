"""Atomic checkpoint copies in fairseq-train.

fairseq saves a checkpoint atomically (``<name>.tmp``, then a rename) but then *copies* it onto
``checkpoint_last.pt`` and ``checkpoint_best.pt`` with a plain ``shutil.copyfile``: a kill
during the copy (SIGKILL, SIGTERM, Ctrl-C, a node preempted) leaves a truncated
``checkpoint_last.pt``, so the previous one is lost too and a re-run cannot resume.
:func:`install_atomic_checkpoint_copies` makes those copies atomic the same way: copy to
``<dst>.tmp``, then rename over ``<dst>``. The temp name is fixed, as fairseq's own, so the next
copy onto the same file overwrites what a kill left. tests/test_train_faults.py kills training
in the copy.
"""
from __future__ import annotations

from fairseq import checkpoint_utils
from fairseq.file_io import PathManager

__all__ = ["install_atomic_checkpoint_copies"]


class _AtomicCopyPathManager(PathManager):
    """fairseq's PathManager, with ``copy`` onto a local path done through a renamed temp."""

    @staticmethod
    def copy(src_path: str, dst_path: str, overwrite: bool = False) -> bool:
        if not PathManager.supports_rename(dst_path):  # remote (ioPath) paths: as fairseq does
            return PathManager.copy(src_path, dst_path, overwrite=overwrite)
        tmp = dst_path + ".tmp"
        PathManager.copy(src_path, tmp, overwrite=True)
        PathManager.rename(tmp, dst_path)  # os.rename: atomic, replaces dst_path
        return True


def install_atomic_checkpoint_copies() -> None:
    """Make ``fairseq.checkpoint_utils`` copy checkpoints atomically (idempotent)."""
    checkpoint_utils.PathManager = _AtomicCopyPathManager
