"""Load a trained checkpoint with everything inference needs beside the weights.

A checkpoint alone cannot translate audio: features must be normalised with the training CMVN
statistics and the target dictionary maps ids to SentencePiece pieces. Both come from the data
directory named in the checkpoint (``cfg.task.data``) or given explicitly, and both are checked
against what the checkpoint recorded at training (``checkpoints/cmvn.py``, ``data_files.py``).
Every file the data config refers to is checked up front, so a missing one fails with its name
and the config key that asked for it, not deep inside fairseq.
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from fairseq import checkpoint_utils
from fairseq.data import Dictionary
from torch import Tensor, nn

import fairseq_mgcm
from fairseq_mgcm.checkpoints.cmvn import check_cmvn, cmvn_record, transform_names
from fairseq_mgcm.checkpoints.data_files import (
    check_data_files,
    config_value,
    data_files_record,
)
from fairseq_mgcm.checkpoints.errors import CheckpointError
from fairseq_mgcm.errors import BadValue, MissingFile, one_line

logger = logging.getLogger(__name__)
fairseq_mgcm.register()  # the task and model, before fairseq loads a checkpoint

# Data-config keys that name files, as (path in the YAML, what the file is).
_FILE_KEYS = (
    (("vocab_filename",), "target dictionary"),
    (("bpe_tokenizer", "sentencepiece_model"), "target SentencePiece model"),
    (("src_vocab_filename",), "source dictionary"),
    (("src_bpe_tokenizer", "sentencepiece_model"), "source SentencePiece model"),
    (("global_cmvn", "stats_npz_path"), "global CMVN statistics"),
)
# Feature transforms that can be applied frame by frame, as a streaming agent must.
_STREAMABLE_TRANSFORMS = {"global_cmvn"}


class GlobalCmvn:
    """``(x - mean) / std`` with the training statistics (``mean``/``std`` arrays in an npz)."""

    def __init__(self, mean: np.ndarray, std: np.ndarray) -> None:
        self.mean = torch.as_tensor(mean, dtype=torch.float32)
        self.std = torch.as_tensor(std, dtype=torch.float32)

    @classmethod
    def from_npz(cls, path: Path, num_mel_bins: int) -> GlobalCmvn:
        stats = np.load(path)
        for key in ("mean", "std"):
            if key not in stats:
                raise BadValue(f"{path}: CMVN statistics lack the array '{key}'")
            if stats[key].shape != (num_mel_bins,):
                raise BadValue(
                    f"{path}: '{key}' has shape {stats[key].shape}, expected ({num_mel_bins},)"
                )
        return cls(stats["mean"], stats["std"])

    def __call__(self, frames: Tensor) -> Tensor:
        return (frames - self.mean) / self.std


@dataclass
class LoadedModel:
    """A model ready for streaming inference and what it needs from the data directory."""

    model: nn.Module
    tgt_dict: Dictionary
    cmvn: GlobalCmvn | None
    sample_rate: int
    num_mel_bins: int
    cfg: Any  # the checkpoint's omegaconf config (model, task)
    data_dir: Path
    config_yaml: str = "config.yaml"  # the data config's file name in data_dir


# The model most recently loaded through ``load_model_cached``, under the key it was loaded
# with, and the content key of the data files it was loaded with (``_data_files_key``).
_CACHE: dict[tuple[object, ...], tuple[LoadedModel, str | None]] = {}


def _checkpoint_key(checkpoint: Path) -> tuple[object, ...]:
    """What identifies the checkpoint's content without reading it: its resolved path, inode,
    size and modification/change times (a retrained, copied or replaced file changes at least
    the change time, which no user-space copy can set back)."""
    info = checkpoint.stat()
    return (str(checkpoint.resolve()), info.st_dev, info.st_ino, info.st_size,
            info.st_mtime_ns, info.st_ctime_ns)


def _data_files_key(loaded: LoadedModel) -> str | None:
    """SHA-256 of the data config and every file it names (dictionaries, SentencePiece models,
    CMVN) as they are now; None if one cannot be read (the loader will name it)."""
    digest = hashlib.sha256()
    try:
        config_path = loaded.data_dir / loaded.config_yaml
        digest.update(config_path.read_bytes())
        config = yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}
        for keys, _ in _FILE_KEYS:
            name = config_value(config, keys) if isinstance(config, dict) else None
            if isinstance(name, str):
                path = Path(name) if Path(name).is_absolute() else loaded.data_dir / name
                digest.update(name.encode() + b"\0" + path.read_bytes())
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    return digest.hexdigest()


def load_model_cached(
    checkpoint: Path,
    data_dir: Path | None = None,
    config_yaml: str | None = None,
    device: str = "cpu",
    fp16: bool = False,
) -> LoadedModel:
    """``load_model``, reusing the last model loaded with the same checkpoint content, data
    directory, config, device and precision.

    A sweep evaluates one checkpoint at many k and segment sizes in one process; each run
    builds a fresh agent and fresh states (per-sentence caches live in ``WaitkStates``, never
    on the model), so the weights, dictionary and CMVN can be shared. Only one model is kept:
    a sweep needs one, and an evaluation process should not hold models it no longer uses.
    A data folder whose config, dictionaries, SentencePiece models or CMVN changed since is
    loaded (and checked against the checkpoint) again.
    """
    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise CheckpointError(f"checkpoint {checkpoint} not found (--checkpoint)")
    resolved_data = str(Path(data_dir).resolve()) if data_dir is not None else None
    key = (_checkpoint_key(checkpoint), resolved_data, config_yaml, device, fp16)
    if key in _CACHE:
        loaded, data_key = _CACHE[key]
        if data_key is not None and _data_files_key(loaded) == data_key:
            logger.info("reusing the model loaded from %s", checkpoint)
            return loaded
        logger.info("%s changed since %s was loaded: loading it again", loaded.data_dir,
                    checkpoint)  # fmt: skip
    _CACHE.clear()  # drop the old model before loading the new one
    loaded = load_model(checkpoint, data_dir, config_yaml, device=device, fp16=fp16)
    _CACHE[key] = (loaded, _data_files_key(loaded))
    return loaded


def check_data_dir(data_dir: Path, config_yaml: str) -> dict[str, Any]:
    """Parse the data config and check every file it names; return the parsed config."""
    config_path = data_dir / config_yaml
    if not config_path.is_file():
        raise MissingFile(
            f"data config {config_path} not found (set --data-dir/--config-yaml to the prepared "
            f"data the checkpoint was trained on)"
        )
    try:
        with open(config_path, encoding="utf-8") as f:
            config = yaml.safe_load(f) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise BadValue(f"{config_path}: not a readable YAML data config "
                       f"({one_line(error)[:200]}); check --config-yaml") from None
    if not isinstance(config, dict):
        raise BadValue(f"{config_path}: expected a YAML mapping (a fairseq data config); "
                       "check --config-yaml")
    for keys, what in _FILE_KEYS:
        name = config_value(config, keys)
        if name is None:
            continue
        path = Path(name) if Path(name).is_absolute() else data_dir / name
        if not path.is_file():
            raise MissingFile(
                f"{path} ({what}, '{'.'.join(keys)}' in {config_path}) does not exist"
            )
    if config.get("use_audio_input", False):
        raise BadValue(f"{config_path}: use_audio_input models are not supported by the agent")
    return config


def eval_feature_transforms(config: dict[str, Any]) -> list[str]:
    """Names of the feature transforms fairseq applies to an evaluation split."""
    return transform_names(config, is_train=False)


def load_model(
    checkpoint: Path,
    data_dir: Path | None = None,
    config_yaml: str | None = None,
    device: str = "cpu",
    fp16: bool = False,
) -> LoadedModel:
    """Load ``checkpoint`` for inference on ``device`` (eval mode, optionally half precision)."""
    if not checkpoint.is_file():
        raise CheckpointError(f"checkpoint {checkpoint} not found (--checkpoint)")
    state = checkpoint_utils.load_checkpoint_to_cpu(str(checkpoint))
    cfg = state.get("cfg")
    if cfg is None or cfg.get("task") is None:
        raise CheckpointError(f"{checkpoint}: no fairseq config inside; not a fairseq checkpoint?")
    data_dir = Path(data_dir) if data_dir is not None else Path(cfg.task.data)
    config_yaml = config_yaml or cfg.task.get("config_yaml", "config.yaml")
    config = check_data_dir(data_dir, config_yaml)
    cfg.task.data = str(data_dir)
    if "config_yaml" in cfg.task:
        cfg.task.config_yaml = config_yaml

    num_mel_bins = int(config.get("input_feat_per_channel", 80))
    transforms = eval_feature_transforms(config)
    unsupported = [t for t in transforms if t not in _STREAMABLE_TRANSFORMS]
    if unsupported:
        raise BadValue(
            f"{data_dir / config_yaml}: feature transforms {unsupported} cannot be applied to "
            f"streaming input (only {sorted(_STREAMABLE_TRANSFORMS)} can)"
        )
    cmvn = None
    if "global_cmvn" in transforms:
        stats = config_value(config, ("global_cmvn", "stats_npz_path"))
        if stats is None:
            raise BadValue(f"{data_dir / config_yaml}: global_cmvn used but no stats_npz_path")
        stats_path = Path(stats) if Path(stats).is_absolute() else data_dir / stats
        cmvn = GlobalCmvn.from_npz(stats_path, num_mel_bins)
    # the CMVN recorded at training must be the one applied here (a missing one ruins output)
    check_cmvn(state.get("task_state") or {}, cmvn_record(config, data_dir, is_train=False),
               str(checkpoint), str(data_dir / config_yaml))  # fmt: skip
    # and so must the dictionaries: another order of the same size turns ids into other words
    check_data_files(state.get("task_state") or {}, data_files_record(config, data_dir),
                     str(checkpoint))  # fmt: skip

    models, cfg, task = checkpoint_utils.load_model_ensemble_and_task(
        [str(checkpoint)], state=state
    )
    model = models[0].eval()
    if fp16:
        model = model.half()
    model = model.to(device)
    logger.info(
        "loaded %s (%s encoder) on %s%s", checkpoint,
        "chunk-causal" if model.encoder.is_chunk_causal else "bidirectional",
        device, " fp16" if fp16 else "",
    )  # fmt: skip
    loaded = LoadedModel(
        model=model,
        tgt_dict=task.target_dictionary,
        cmvn=cmvn,
        sample_rate=int(config.get("sample_rate", 16000)),
        num_mel_bins=num_mel_bins,
        cfg=cfg,
        data_dir=data_dir,
        config_yaml=config_yaml,
    )
    if str(device).startswith("cuda"):  # lazy CUDA initialisation, not the first instance's
        from fairseq_mgcm.agents.warm_up import warm_up

        warm_up(model, loaded.tgt_dict, num_mel_bins)
    return loaded
