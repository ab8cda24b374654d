"""Record the dictionaries and SentencePiece models in the checkpoint; check them when loaded.

A model's output ids mean something only through the target dictionary it was trained with: a
data folder whose dictionary has the same size but another order decodes every id to another
piece, and BLEU falls from 35 to 0.3 with no error (issue 20). Like the CMVN (``cmvn.py``), the
task stores a fingerprint of each such file in its checkpoint state
(``state["task_state"]["data_files"]``): the target and source dictionaries and SentencePiece
models the data config names, each as ``{"path", "sha256"}``. A dictionary's fingerprint is
that of its symbols in order (the counts beside them change no id); a SentencePiece model's is
that of the file. Every loader that pairs a checkpoint with a data folder (the SimulEval agent,
fairseq-generate through the task, the sweep, checkpoint averaging among its inputs) refuses a
different file with one line naming both; a checkpoint from before this record loads with a
warning.
"""
from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

from fairseq_mgcm.errors import UserError

logger = logging.getLogger(__name__)

TASK_STATE_KEY = "data_files"
# Where the path of the checkpoint a state was read from is noted (in memory only, by the
# checkpoint loader of ``errors.py``), so that the task's check can name the file.
LOADED_FROM_KEY = "loaded_from"

# The data-config entries the model's outputs depend on: (keys in the YAML, what, dictionary?).
RECORDED = (
    (("vocab_filename",), "target dictionary", True),
    (("bpe_tokenizer", "sentencepiece_model"), "target SentencePiece model", False),
    (("src_vocab_filename",), "source dictionary", True),
    (("src_bpe_tokenizer", "sentencepiece_model"), "source SentencePiece model", False),
)
_OVERWRITE_FLAG = " #fairseq:overwrite"
_SHOWN = 12  # hex digits of a SHA-256 shown in messages
_WARNED: set[str] = set()  # warnings already logged

__all__ = [
    "config_value",
    "LOADED_FROM_KEY", "TASK_STATE_KEY", "DataFileMismatch", "check_data_files",
    "data_files_record", "fingerprint_mismatch", "note_loaded_from",
]  # fmt: skip


class DataFileMismatch(UserError, ValueError):
    """The data folder's dictionary or SentencePiece model is not the one the model learnt."""


def config_value(config: dict[str, Any], keys: tuple[str, ...]) -> Any:
    """``config[k1][k2]...`` of a data config, or None where a key is missing."""
    value: Any = config
    for key in keys:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def _noun(what: str) -> str:
    return "dictionary" if what.endswith("dictionary") else "SentencePiece model"


def _dictionary_symbols(path: Path) -> bytes:
    """The symbols of a fairseq dictionary file in order, one per line (counts dropped), as
    fairseq's ``Dictionary.add_from_file`` splits each line."""
    symbols = []
    for line in path.read_text(encoding="utf-8").splitlines():
        entry = line.rstrip()
        if not entry:
            continue
        if entry.endswith(_OVERWRITE_FLAG):
            entry = entry[: -len(_OVERWRITE_FLAG)]
        symbols.append(entry.rsplit(" ", 1)[0])
    return "\n".join(symbols).encode("utf-8")


def _sha256(path: Path, dictionary: bool) -> str:
    content = _dictionary_symbols(path) if dictionary else path.read_bytes()
    return hashlib.sha256(content).hexdigest()


def data_files_record(config: dict[str, Any], root: Path) -> dict[str, dict[str, str]]:
    """``{what: {"path", "sha256"}}`` for each recorded file ``config`` names (relative paths
    are under ``root``, the data folder); a file the config names but that is missing is left
    out (the loaders that need it name it themselves)."""
    record: dict[str, dict[str, str]] = {}
    for keys, what, dictionary in RECORDED:
        name = config_value(config, keys)
        if not isinstance(name, str):
            continue
        path = Path(name) if Path(name).is_absolute() else Path(root) / name
        if path.is_file():
            record[what] = {"path": str(path), "sha256": _sha256(path, dictionary)}
    return record


def _warn_once(message: str) -> None:
    """Log ``message`` the first time only: the agent checks before fairseq's loader has the
    task check the same checkpoint again."""
    if message not in _WARNED:
        _WARNED.add(message)
        logger.warning(message)


def check_data_files(task_state: dict[str, Any], current: dict[str, dict[str, str]],
                     checkpoint: str) -> None:
    """Raise :class:`DataFileMismatch` when a recorded file differs from the data folder's
    (``current``: :func:`data_files_record` of it); warn when ``task_state`` (the checkpoint's
    task state) has no record, or a recorded file is not configured now."""
    if TASK_STATE_KEY not in task_state:
        _warn_once(f"{checkpoint} records no dictionary fingerprints (saved before they were "
                   f"recorded): that the data folder's dictionaries are the ones it was trained "
                   f"with is not checked")  # fmt: skip
        return
    trained: dict[str, dict[str, str]] = task_state[TASK_STATE_KEY] or {}
    for what, then in trained.items():
        now = current.get(what)
        if now is None:
            _warn_once(f"{checkpoint} was trained with the {what} {then['path']}, which the data "
                       f"config no longer names")  # fmt: skip
        elif now["sha256"] != then["sha256"]:
            raise DataFileMismatch(
                f"{checkpoint} was trained with the {what} sha256 {then['sha256'][:_SHOWN]}…; "
                f"{now['path']} has {now['sha256'][:_SHOWN]}… (another {_noun(what)}): "
                f"use the data folder it was trained on"
            )


def note_loaded_from(state: Any, path: str) -> None:
    """Note in ``state``'s task state (in memory) which file it was read from: fairseq hands
    the task only the task state, and its check must name the checkpoint."""
    task_state = state.get("task_state") if isinstance(state, dict) else None
    if isinstance(task_state, dict):
        task_state[LOADED_FROM_KEY] = str(path)


def fingerprint_mismatch(first: dict[str, Any], other: dict[str, Any]) -> str | None:
    """What differs between two checkpoints' task states in the data they were trained on (the
    recorded dictionaries and SentencePiece models, and the CMVN statistics), or None.

    A checkpoint without the record differs from one with it: whether they agree is unknown.
    """
    def recorded(state: dict[str, Any]) -> dict[str, str] | None:
        if TASK_STATE_KEY not in state:
            return None
        shas = {what: entry["sha256"] for what, entry in (state[TASK_STATE_KEY] or {}).items()}
        cmvn = state.get("train_cmvn")  # cmvn.TASK_STATE_KEY: None for a model without CMVN
        shas["global CMVN statistics"] = cmvn["sha256"] if cmvn else "none"
        return shas

    a, b = recorded(first), recorded(other)
    if a is None and b is None:
        return None
    if a is None or b is None:
        return "dictionary fingerprints recorded in one but not the other (an older checkpoint)"
    differ = sorted(what for what in set(a) | set(b) if a.get(what) != b.get(what))
    return f"another {', '.join(differ)}" if differ else None
