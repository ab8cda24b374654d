"""The registered task ``speech_to_text_multitask``: ST with CTC and ASR auxiliary targets.

Extends fairseq's ``SpeechToTextTask`` (manifests, data config, target dictionary, generator for
``fairseq-generate``) with an English source dictionary, batches that carry the transcript, a
``train_step`` that hands the criterion's per-task losses to the optimizer
(``fairseq_mgcm.optim.multitask_backward``: the conflict engine under ``--optimizer
conflict_aware``, their plain sum otherwise), and sacrebleu BLEU on validation (``--eval-bleu``).
"""

from __future__ import annotations

import copy
import json
import logging
from argparse import Namespace
from pathlib import Path
from typing import Any, Protocol

import torch
from fairseq import utils
from fairseq.criterions import FairseqCriterion
from fairseq.data import ConcatDataset, Dictionary
from fairseq.data.audio.data_cfg import S2TDataConfig
from fairseq.dataclass import FairseqDataclass
from fairseq.models import BaseFairseqModel
from fairseq.optim import FairseqOptimizer
from fairseq.optim.amp_optimizer import AMPOptimizer
from fairseq.tasks import FairseqTask, register_task
from fairseq.tasks.speech_to_text import SpeechToTextTask
from omegaconf import DictConfig, open_dict
from torch import Tensor

from fairseq_mgcm.checkpoints.cmvn import TASK_STATE_KEY, check_cmvn, cmvn_record
from fairseq_mgcm.checkpoints.data_files import LOADED_FROM_KEY, check_data_files, data_files_record
from fairseq_mgcm.checkpoints.data_files import TASK_STATE_KEY as DATA_FILES_KEY
from fairseq_mgcm.data.multitask_dataset import (
    TranscriptSpeechToTextDataset,
    build_src_bpe,
    load_transcript_dataset,
)
from fairseq_mgcm.errors import BadValue, MissingFile, one_line
from fairseq_mgcm.optim import multitask_backward
from fairseq_mgcm.tasks._bleu import bleu_logging_output, reduce_bleu
from fairseq_mgcm.tasks.config import SpeechToTextMultitaskConfig

logger = logging.getLogger(__name__)


class _Bpe(Protocol):
    """What the task uses of a fairseq BPE (``encoders.build_bpe``, e.g. SentencePiece)."""

    def encode(self, x: str) -> str: ...

    def decode(self, x: str) -> str: ...


class _StartUpChecks(Protocol):
    """A criterion's start-up checks (``StCtcAsrCriterion``), run as the model and data load."""

    def check_model_config(self, model_cfg: FairseqDataclass) -> None: ...

    def check_dataset(
        self,
        split: str,
        dataset: TranscriptSpeechToTextDataset | ConcatDataset,
        model_cfg: FairseqDataclass,
    ) -> None: ...


def _load_dictionary(data_cfg: S2TDataConfig, key: str, config_path: Path) -> Dictionary:
    filename = data_cfg.config.get(key)
    if filename is None:
        raise BadValue(f"{config_path}: missing key '{key}' (a fairseq dictionary file)")
    path = data_cfg.root / filename
    if not path.is_file():
        raise MissingFile(f"{config_path}: '{key}' names {path}, which does not exist")
    return Dictionary.load(path.as_posix())


def _read_data_config(config_path: Path) -> S2TDataConfig:
    """fairseq's reader of the data config, with one-line errors naming ``--config-yaml``."""
    if not config_path.is_file():
        raise MissingFile(f"{config_path}: no such data config (--config-yaml, relative to the "
                          "data folder)")
    try:
        data_cfg = S2TDataConfig(config_path)
    except Exception as error:  # noqa: BLE001  fairseq wraps every YAML failure in Exception
        raise BadValue(f"{config_path}: not a readable YAML data config ({one_line(error)[:200]})"
                       "; check --config-yaml") from None
    if not isinstance(data_cfg.config, dict):
        raise BadValue(f"{config_path}: expected a YAML mapping (a fairseq data config); check "
                       "--config-yaml")
    return data_cfg


def _resolve_data_paths(data_cfg: S2TDataConfig) -> None:
    """Make the paths fairseq leaves relative to the working directory relative to the data
    directory instead: the TSV ``audio`` column (via ``audio_root``) and the CMVN statistics.
    Both become absolute, so code that joins them with the data directory again (or runs from
    another working directory) cannot double a relative ``--data-dir``."""
    config = data_cfg.config
    root = data_cfg.root.resolve()
    audio = Path(config.get("audio_root", root))
    config["audio_root"] = (audio if audio.is_absolute() else root / audio).as_posix()
    cmvn = config.get("global_cmvn")
    if cmvn is not None and "stats_npz_path" in cmvn:
        path = Path(cmvn["stats_npz_path"])
        cmvn["stats_npz_path"] = (path if path.is_absolute() else root / path).as_posix()


@register_task("speech_to_text_multitask", dataclass=SpeechToTextMultitaskConfig)
class SpeechToTextMultitaskTask(SpeechToTextTask):
    """Speech translation (German target) with the English transcript as auxiliary target.

    ``source_dictionary`` stays None as in fairseq's speech tasks (the source is audio, and
    ``fairseq-generate`` would try to print it as tokens); the English dictionary is
    ``transcript_dictionary``.
    """

    cfg: SpeechToTextMultitaskConfig
    # options from the dataclass
    add_args = classmethod(FairseqTask.add_args.__func__)  # type: ignore[var-annotated]

    def __init__(
        self, cfg: SpeechToTextMultitaskConfig, tgt_dict: Dictionary, src_dict: Dictionary
    ) -> None:
        super().__init__(cfg, tgt_dict)
        self.cfg = cfg
        self.src_dict = src_dict
        self.sequence_generator = None
        self._model_cfg: FairseqDataclass | None = None  # kept for the criterion's start-up checks
        self._start_up_checks: _StartUpChecks | None = None
        _resolve_data_paths(self.data_cfg)

    @classmethod
    def setup_task(
        cls, cfg: SpeechToTextMultitaskConfig, **kwargs: object
    ) -> "SpeechToTextMultitaskTask":
        config_path = Path(cfg.data) / cfg.config_yaml
        data_cfg = _read_data_config(config_path)
        tgt_dict = _load_dictionary(data_cfg, "vocab_filename", config_path)
        src_dict = _load_dictionary(data_cfg, "src_vocab_filename", config_path)
        logger.info(f"target dictionary: {len(tgt_dict)} types, source: {len(src_dict)} types")
        return cls(cfg, tgt_dict, src_dict)

    @property
    def transcript_dictionary(self) -> Dictionary:
        return self.src_dict

    def load_dataset(
        self, split: str, epoch: int = 1, combine: bool = False, **kwargs: object
    ) -> None:
        self.datasets[split] = load_transcript_dataset(
            root=self.cfg.data,
            data_cfg=self.data_cfg,
            splits=split,
            tgt_dict=self.tgt_dict,
            src_dict=self.src_dict,
            is_train_split=split.startswith("train"),
        )
        if self._start_up_checks is not None and split.startswith("train"):
            self._start_up_checks.check_dataset(split, self.datasets[split], self._model_cfg)

    def build_model(self, cfg: FairseqDataclass, from_checkpoint: bool = False) -> BaseFairseqModel:
        if from_checkpoint and getattr(cfg, "load_pretrained_encoder_from", None):
            # The checkpoint's own weights replace this initialisation: do not read (or need)
            # the pre-trained encoder's file when loading for decoding or evaluation.
            cfg = copy.deepcopy(cfg)
            with open_dict(cfg):
                cfg.load_pretrained_encoder_from = None
        model = FairseqTask.build_model(self, cfg, from_checkpoint)
        self._model_cfg = cfg
        if self.cfg.eval_bleu:
            gen_args = Namespace(**json.loads(self.cfg.eval_bleu_args))
            self.sequence_generator = self.build_generator([model], gen_args)
            self.bleu_bpe = self.build_bpe(None)
        return model

    # ------------------------------- checkpoint state: the training CMVN and dictionaries

    def state_dict(self) -> dict:
        """fairseq saves this as ``task_state``: it records the CMVN of the training split and
        the dictionaries and SentencePiece models (``checkpoints/data_files.py``)."""
        record = cmvn_record(self.data_cfg.config, self.data_cfg.root, is_train=True)
        files = data_files_record(self.data_cfg.config, self.data_cfg.root)
        return {**super().state_dict(), TASK_STATE_KEY: record, DATA_FILES_KEY: files}

    def load_state_dict(self, state_dict: dict) -> None:
        """fairseq calls this when it loads a checkpoint (fairseq-generate, the agent): refuse a
        data folder whose CMVN, dictionaries or SentencePiece models differ from training."""
        checkpoint = state_dict.get(LOADED_FROM_KEY, "the checkpoint")
        current = cmvn_record(self.data_cfg.config, self.data_cfg.root, is_train=False)
        check_cmvn(state_dict, current, checkpoint,
                   str(Path(self.cfg.data) / self.cfg.config_yaml))  # fmt: skip
        check_data_files(state_dict, data_files_record(self.data_cfg.config, self.data_cfg.root),
                         checkpoint)  # fmt: skip
        ours = (TASK_STATE_KEY, DATA_FILES_KEY, LOADED_FROM_KEY)
        super().load_state_dict({k: v for k, v in state_dict.items() if k not in ours})

    def build_criterion(self, cfg: DictConfig) -> FairseqCriterion:
        """fairseq's criterion, checked against the model built before it (e.g. --mt-weight
        needs --mt-text-encoder) and, when the train split loads, against its data."""
        criterion = super().build_criterion(cfg)
        if hasattr(criterion, "check_model_config") and self._model_cfg is not None:
            criterion.check_model_config(self._model_cfg)
            self._start_up_checks = criterion
        return criterion

    def build_src_bpe(self) -> _Bpe | None:
        """The English SentencePiece tokenizer of the transcripts (None if not configured)."""
        return build_src_bpe(self.data_cfg)

    # ---------------------------------------------------------------- training

    def train_step(
        self,
        sample: dict[str, Any],
        model: BaseFairseqModel,
        criterion: FairseqCriterion,
        optimizer: FairseqOptimizer,
        update_num: int,
        ignore_grad: bool = False,
    ) -> tuple[Tensor, int, dict[str, Any]]:
        """One forward pass for all tasks, then the backward of their losses: the conflict
        engine's under ``--optimizer conflict_aware``, the plain sum's otherwise. The engine gets
        the forward itself, so that ``--conflict-memory recompute`` can run it once per backward
        pass; the loss and logging output returned are the first forward's."""
        model.train()
        model.set_num_updates(update_num)
        amp = isinstance(optimizer, AMPOptimizer)
        first: dict[str, Any] = {}

        def forward() -> dict[str, Tensor]:
            with torch.autograd.profiler.record_function("forward"):
                with torch.autocast("cuda", enabled=amp):
                    losses, sample_size, logging_output = criterion.compute_task_losses(
                        model, sample
                    )
            if ignore_grad:
                losses = {name: loss * 0 for name, loss in losses.items()}
            if not first:
                first.update(loss=sum(loss.detach() for loss in losses.values()),
                             sample_size=sample_size, logging_output=logging_output)
            return losses

        # ST is the primary task; ASR pre-training (--st-weight 0) makes ASR primary. Every
        # other loss the criterion returns (ctc, asr, mt, ...) is an auxiliary task.
        with multitask_backward(optimizer, model) as backward:
            with torch.autograd.profiler.record_function("backward"):
                backward(forward, primary=criterion.primary_task, update_num=update_num)
        return first["loss"], first["sample_size"], first["logging_output"]

    # ---------------------------------------------------------------- validation

    def valid_step(
        self, sample: dict[str, Any], model: BaseFairseqModel, criterion: FairseqCriterion
    ) -> tuple[Tensor, int, dict[str, Any]]:
        loss, sample_size, logging_output = super().valid_step(sample, model, criterion)
        if self.cfg.eval_bleu:
            logging_output.update(self._bleu_stats(sample, model))
        return loss, sample_size, logging_output

    def _bleu_stats(self, sample: dict[str, Any], model: BaseFairseqModel) -> dict[str, float]:
        def detok(tokens: torch.Tensor, unk: str) -> str:
            text = self.tgt_dict.string(tokens.int().cpu(), unk_string=unk)
            return self.bleu_bpe.decode(text) if self.bleu_bpe is not None else text

        gen_out = self.inference_step(self.sequence_generator, [model], sample)
        hyps, refs = [], []
        for i, hypos in enumerate(gen_out):
            hyps.append(detok(hypos[0]["tokens"], "UNKNOWNTOKENINHYP"))
            target = utils.strip_pad(sample["target"][i], self.tgt_dict.pad())
            refs.append(detok(target, "UNKNOWNTOKENINREF"))
        if self.cfg.eval_bleu_print_samples and hyps:
            logger.info(f"example hypothesis: {hyps[0]}")
            logger.info(f"example reference: {refs[0]}")
        return bleu_logging_output(hyps, refs)

    def reduce_metrics(
        self, logging_outputs: list[dict[str, Any]], criterion: FairseqCriterion
    ) -> None:
        super().reduce_metrics(logging_outputs, criterion)
        if self.cfg.eval_bleu:
            reduce_bleu(logging_outputs)
