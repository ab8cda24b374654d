"""Record the training CMVN in the checkpoint and check it when the model is loaded.

A model trained on globally normalised features (``global_cmvn`` in the data config) and decoded
with a config that lacks it sees features tens of units off its training range and translates
garbage, silently (BLEU 47 -> 2 in issue 13). The task stores a fingerprint of the CMVN its
training split used in its checkpoint state (``state["task_state"]["train_cmvn"]``: the
statistics file and the SHA-256 of its ``mean`` and ``std`` arrays, or None for a model trained
without CMVN); fairseq hands that state back to the task when it loads the checkpoint (for
fairseq-generate), and the SimulEval agent checks it before building the model. A checkpoint
from before this record carries no key and is not checked.
"""
from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import numpy as np

from fairseq_mgcm.errors import UserError

logger = logging.getLogger(__name__)

TASK_STATE_KEY = "train_cmvn"

__all__ = ["TASK_STATE_KEY", "CmvnMismatch", "check_cmvn", "cmvn_record", "transform_names"]


class CmvnMismatch(UserError, ValueError):
    """The data config normalises features differently from the model's training."""


def transform_names(config: dict[str, Any], is_train: bool) -> list[str]:
    """Feature transforms fairseq applies to a train (or evaluation) split of ``config``."""
    names: list[str] = []
    for key in ("transforms", "feature_transforms"):
        table = config.get(key) or {}
        chosen = table.get("_train" if is_train else "_eval", table.get("*", []))
        names += list(chosen or [])
    return names


def cmvn_record(config: dict[str, Any], root: Path, is_train: bool) -> dict[str, str] | None:
    """Fingerprint of the global CMVN ``config`` applies (None: no global CMVN)."""
    if "global_cmvn" not in transform_names(config, is_train):
        return None
    stats = (config.get("global_cmvn") or {}).get("stats_npz_path")
    if stats is None:
        raise CmvnMismatch(f"{root}: global_cmvn is applied but has no stats_npz_path")
    path = Path(stats) if Path(stats).is_absolute() else root / stats
    with np.load(path) as arrays:
        digest = hashlib.sha256()
        for name in ("mean", "std"):
            digest.update(np.ascontiguousarray(arrays[name], dtype=np.float32).tobytes())
    return {"stats_npz_path": str(path), "sha256": digest.hexdigest()}


def check_cmvn(task_state: dict[str, Any], current: dict[str, str] | None, checkpoint: str,
               config_path: str) -> None:
    """Raise :class:`CmvnMismatch` when the data config's CMVN is missing or added relative to
    training; warn when the statistics differ. ``task_state``: the checkpoint's task state."""
    if TASK_STATE_KEY not in task_state:
        return  # a checkpoint from before the record
    trained = task_state[TASK_STATE_KEY]
    if trained is not None and current is None:
        raise CmvnMismatch(
            f"{config_path}: no global_cmvn, but {checkpoint} was trained with global CMVN "
            f"({trained['stats_npz_path']}); unnormalised features would ruin its output: use "
            f"the training data config or add its global_cmvn"
        )
    if trained is None and current is not None:
        raise CmvnMismatch(
            f"{config_path}: applies global_cmvn ({current['stats_npz_path']}), but {checkpoint} "
            f"was trained without it: remove global_cmvn from the feature transforms"
        )
    if trained is not None and current is not None and trained["sha256"] != current["sha256"]:
        logger.warning(
            "%s: CMVN statistics %s differ from those %s was trained with (%s)",
            config_path, current["stats_npz_path"], checkpoint, trained["stats_npz_path"],
        )  # fmt: skip
