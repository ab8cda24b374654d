"""fairseq checkpoints: how they are read, written and checked.

fairseq 0.12 predates torch's safe loading and copies checkpoints non-atomically; these modules
patch the three places where that loses work or hides a wrong file, and record what a model was
trained with so a later load can check it:

- ``safe_globals``: allowlist the types fairseq checkpoints pickle, so ``torch.load`` stays safe;
- ``errors``: one-line errors naming the file of a checkpoint that cannot be read
  (:func:`read_checkpoint`, and fairseq's own loader once patched);
- ``atomic_copies``: fairseq's copies onto ``checkpoint_last.pt``/``checkpoint_best.pt`` made
  atomic;
- ``cmvn``: the training CMVN recorded in the checkpoint and checked at load time;
- ``data_files``: the same for the dictionaries and SentencePiece models (the loader of
  ``errors`` notes which file a state came from, so the check can name it).

:func:`install_fairseq_patches` applies the three patches; the plugin does it when fairseq
loads it (``fairseq_mgcm.register``). Importing this package imports neither fairseq nor torch.
"""
from __future__ import annotations

__all__ = ["install_fairseq_patches"]


def install_fairseq_patches() -> None:
    """Safe loading, file-naming load errors and atomic copies in fairseq (idempotent)."""
    from fairseq_mgcm.checkpoints.atomic_copies import install_atomic_checkpoint_copies
    from fairseq_mgcm.checkpoints.errors import install_checkpoint_errors
    from fairseq_mgcm.checkpoints.safe_globals import install_fairseq_safe_globals

    install_fairseq_safe_globals()
    install_checkpoint_errors()
    install_atomic_checkpoint_copies()
