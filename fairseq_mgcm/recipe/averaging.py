"""Average the parameters of the last N fairseq checkpoints (a standard ST recipe step).

fairseq ships its ``average_checkpoints.py`` only in the source repository, not in the wheel,
so the recipe brings its own. Averaging is done in float64 and cast back to each tensor's
dtype; everything but the model weights (config, optimizer history) comes from the newest
checkpoint, which keeps the result loadable by fairseq-generate and the SimulEval agent. Inputs
trained on different data (dictionaries, SentencePiece models or CMVN, as each recorded it:
``checkpoints/data_files.py``) are refused: their average would mean nothing.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import torch

from fairseq_mgcm.atomic_files import atomic_path
from fairseq_mgcm.checkpoints.data_files import fingerprint_mismatch
from fairseq_mgcm.checkpoints.errors import read_checkpoint

__all__ = ["average_checkpoints", "check_output", "last_checkpoints"]

_NUMBERED = re.compile(r"checkpoint(\d+)\.pt$|checkpoint_\d+_(\d+)\.pt$")
# What fairseq-train writes into a save dir: checkpoint<E>.pt, checkpoint_<E>_<U>.pt,
# checkpoint_last.pt, checkpoint_best.pt and checkpoint.best_<metric>_<value>.pt.
_TRAINING_WRITES = re.compile(r"checkpoint(\d+|_\d+_\d+|_last|_best|\..*_.*)\.pt")


def last_checkpoints(save_dir: str | os.PathLike, n: int, by: str = "epoch") -> list[Path]:
    """The ``n`` newest numbered checkpoints (``checkpointE.pt`` or ``checkpoint_E_U.pt``)."""
    if n < 1:
        raise ValueError(f"the number of checkpoints to average must be >= 1, got {n}")
    group = 1 if by == "epoch" else 2
    found = []
    for path in Path(save_dir).glob("checkpoint*.pt"):
        match = _NUMBERED.search(path.name)
        if match and match.group(group) is not None:
            found.append((int(match.group(group)), path))
    if not found:
        raise FileNotFoundError(f"no numbered checkpoints ({by}) in {save_dir}")
    return [path for _, path in sorted(found)[-n:]]


def check_output(paths: list[Path], output: str | os.PathLike) -> None:
    """Refuse an ``output`` that would overwrite an input, or a checkpoint a training writes
    (its next resume or averaging would read the average as a trained epoch)."""
    output = Path(output)
    for path in paths:
        if os.path.realpath(path) == os.path.realpath(output) or (
                output.exists() and os.path.samefile(path, output)):
            raise ValueError(f"--output {output}: one of the checkpoints being averaged; "
                             f"choose another name (e.g. checkpoint_avg.pt)")
    if _TRAINING_WRITES.fullmatch(output.name):
        raise ValueError(f"--output {output}: named like a checkpoint fairseq-train writes; "
                         f"choose another name (e.g. checkpoint_avg.pt)")


def average_checkpoints(paths: list[Path], output: str | os.PathLike) -> Path:
    """Write the parameter average of ``paths`` to ``output`` atomically and return it; an
    output among the inputs or named like a training's checkpoint is refused first."""
    if not paths:
        raise ValueError("average_checkpoints needs at least one checkpoint")
    check_output(paths, output)
    total: dict[str, torch.Tensor] = {}
    newest = None
    trained_on: dict | None = None  # the first input's task state: the data it was trained on
    for path in paths:
        state = read_checkpoint(path, require=("model",))  # one-line errors naming the file
        model = state["model"]
        task_state = state.get("task_state") or {}
        if trained_on is None:
            trained_on = task_state
        elif differs := fingerprint_mismatch(trained_on, task_state):
            raise ValueError(f"{path} was trained on other data than {paths[0]} ({differs}); "
                             f"refusing to average them")
        if total and model.keys() != total.keys():
            raise ValueError(f"{path}: parameters differ from {paths[0]}")
        for name, tensor in model.items():
            acc = total.get(name)
            total[name] = tensor.double() if acc is None else acc.add_(tensor.double())
        newest = state
    assert newest is not None
    newest["model"] = {
        name: (acc / len(paths)).to(newest["model"][name].dtype) for name, acc in total.items()
    }
    output = Path(output)
    with atomic_path(output) as tmp:
        torch.save(newest, tmp)
    return output
