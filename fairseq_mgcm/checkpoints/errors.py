"""One-line errors, naming the file, for checkpoints that cannot be read.

torch reports a truncated, empty or random file with messages that name neither the file nor
the problem ("PytorchStreamReader failed reading zip archive", "invalid load key"), one of them
advising ``weights_only=False``, which would run whatever code the file carries. fairseq's
loader then fails on a file that is a torch pickle but not a fairseq checkpoint with
``KeyError: 'best_loss'``. :func:`read_checkpoint` (the project's own readers: the agent,
checkpoint averaging) and the wrapped ``fairseq.checkpoint_utils.load_checkpoint_to_cpu``
(fairseq-generate, fairseq-train ``--restore-file`` and ``--load-pretrained-encoder-from``, once
the plugin is imported) turn these into a :class:`CheckpointError` that says which file and
what is wrong with it. The chained torch error is suppressed so that its advice is not shown.
"""
from __future__ import annotations

import functools
import inspect
import os
import zipfile
from pathlib import Path
from typing import Any

import torch

from fairseq_mgcm.checkpoints.data_files import note_loaded_from
from fairseq_mgcm.checkpoints.safe_globals import install_fairseq_safe_globals
from fairseq_mgcm.errors import UserError

__all__ = ["CheckpointError", "install_checkpoint_errors", "read_checkpoint"]


class CheckpointError(UserError, ValueError):
    """A checkpoint file that is missing, unreadable or not a fairseq checkpoint (a user error:
    one line, no traceback, in every entry point)."""


def _unreadable(path: Path, error: BaseException) -> str:
    """Why torch could not read ``path`` (the file exists), in one line."""
    size = path.stat().st_size
    if size == 0:
        return f"{path}: empty file (0 bytes), not a checkpoint"
    if not zipfile.is_zipfile(path):
        return (
            f"{path}: not a PyTorch checkpoint ({size} bytes that are not a torch.save archive; "
            f"truncated or corrupt?)"
        )
    text = str(error)
    if text.startswith("Weights only load failed"):  # a type outside the allowlist
        found = [line.strip() for line in text.splitlines()
                 if "GLOBAL" in line or "Unsupported global" in line]  # fmt: skip
        what = found[0].rstrip(".") if found else "a global outside the allowlist"
        return f"{path}: refused, it pickles code or types a checkpoint does not hold ({what})"
    first = next((line for line in text.splitlines() if line.strip()), "")
    if "weights_only" in first or not first:  # never pass on the advice to load unsafely
        first = type(error).__name__
    return f"{path}: unreadable checkpoint (truncated or corrupt?): {first.strip()[:200]}"


def _load(path: Path) -> Any:
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    install_fairseq_safe_globals()  # a reader without the plugin loaded reads safely too
    try:
        return torch.load(path, map_location="cpu")
    except Exception as error:  # noqa: BLE001  torch raises RuntimeError, EOFError, UnpicklingError...
        raise CheckpointError(_unreadable(path, error)) from None


def check_structure(state: Any, path: Path, require: tuple[str, ...]) -> None:
    """Raise the project's "not a fairseq checkpoint?" error if ``state`` lacks ``require``."""
    if not isinstance(state, dict):
        raise CheckpointError(
            f"{path}: holds a {type(state).__name__}, not a dict; not a fairseq checkpoint?"
        )
    missing = [key for key in require if key not in state]
    if "config" in require and ("cfg" in state or "args" in state):
        missing.remove("config")
    if missing:
        keys = ", ".join(sorted(map(str, state))[:6]) or "none"
        names = ", ".join("'cfg' (or 'args')" if k == "config" else repr(k) for k in missing)
        raise CheckpointError(
            f"{path}: no {names} entry (top-level keys: {keys}); not a fairseq checkpoint?"
        )
    if "model" in require and not isinstance(state["model"], dict):
        raise CheckpointError(f"{path}: 'model' is not a state dict; not a fairseq checkpoint?")


def read_checkpoint(path: str | os.PathLike, require: tuple[str, ...] = ("model",)) -> Any:
    """``torch.load`` (safe, on CPU) with one-line errors; ``require`` names the top-level
    entries the caller needs (``"config"``: ``cfg`` or the old ``args``)."""
    path = Path(path)
    state = _load(path)
    check_structure(state, path, require)
    return state


def _explained(load: Any) -> Any:
    """Wrap fairseq's ``load_checkpoint_to_cpu`` so that its failures name the file (and the
    task's data check can: ``data_files.note_loaded_from``)."""

    @functools.wraps(load)
    def load_checkpoint_to_cpu(path: str, *args: Any, **kwargs: Any) -> Any:
        try:
            state = load(path, *args, **kwargs)
            note_loaded_from(state, path)  # the task's data check names the checkpoint
            return state
        except CheckpointError:
            raise
        except Exception:
            local = Path(path)
            if not local.is_file():
                raise
            try:  # re-read to tell a bad file from a fairseq failure on a good one
                check_structure(_load(local), local, ("model", "config", "optimizer_history"))
            except CheckpointError as explained:
                raise explained from None
            raise

    load_checkpoint_to_cpu.__wrapped_by_fairseq_mgcm__ = True  # type: ignore[attr-defined]
    return load_checkpoint_to_cpu


def _found_first(load_ensemble: Any) -> Any:
    """Wrap fairseq's ``load_model_ensemble_and_task`` so that a missing checkpoint (``--path``
    of fairseq-generate) is a :class:`CheckpointError`, not fairseq's bare ``OSError``."""

    signature = inspect.signature(load_ensemble)

    @functools.wraps(load_ensemble)
    def load_model_ensemble_and_task(filenames: Any, *args: Any, **kwargs: Any) -> Any:
        call = signature.bind(filenames, *args, **kwargs)
        call.apply_defaults()
        given = call.arguments
        if given.get("num_shards") == 1 and not given.get("suffix"):  # the names are the files
            for name in filenames:
                if not Path(name).is_file():
                    raise CheckpointError(f"{name}: checkpoint not found (--path)")
        return load_ensemble(filenames, *args, **kwargs)

    load_model_ensemble_and_task.__wrapped_by_fairseq_mgcm__ = True  # type: ignore[attr-defined]
    return load_model_ensemble_and_task


def install_checkpoint_errors() -> None:
    """Replace ``fairseq.checkpoint_utils.load_checkpoint_to_cpu`` (and
    ``load_model_ensemble_and_task``) by the explaining wrappers.

    Idempotent. fairseq's own callers (``load_model_ensemble_and_task``, the trainer,
    ``load_model_ensemble``) look the functions up in their module at call time, so they get the
    wrappers too.
    """
    from fairseq import checkpoint_utils

    current = checkpoint_utils.load_checkpoint_to_cpu
    if not getattr(current, "__wrapped_by_fairseq_mgcm__", False):
        checkpoint_utils.load_checkpoint_to_cpu = _explained(current)
    ensemble = checkpoint_utils.load_model_ensemble_and_task
    if not getattr(ensemble, "__wrapped_by_fairseq_mgcm__", False):
        checkpoint_utils.load_model_ensemble_and_task = _found_first(ensemble)
