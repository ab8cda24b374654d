"""Average the parameters of the last N fairseq checkpoints (a standard ST recipe step).

fairseq ships its ``average_checkpoints.py`` only in the source repository, not in the wheel,
so the recipe brings its own. Averaging is done in float64 and cast back to each tensor's
dtype; everything but the model weights (config, optimizer history) comes from the newest
checkpoint, which keeps the result loadable by fairseq-generate and the SimulEval agent.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import torch

from fairseq_mgcm.atomic_files import atomic_path
from fairseq_mgcm.checkpoints.errors import read_checkpoint

__all__ = ["average_checkpoints", "last_checkpoints"]

_NUMBERED = re.compile(r"checkpoint(\d+)\.pt$|checkpoint_\d+_(\d+)\.pt$")


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


def average_checkpoints(paths: list[Path], output: str | os.PathLike) -> Path:
    """Write the parameter average of ``paths`` to ``output`` atomically and return it."""
    if not paths:
        raise ValueError("average_checkpoints needs at least one checkpoint")
    total: dict[str, torch.Tensor] = {}
    newest = None
    for path in paths:
        state = read_checkpoint(path, require=("model",))  # one-line errors naming the file
        model = state["model"]
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
