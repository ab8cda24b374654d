"""Speech-to-text dataset whose batches also carry the tokenized English transcript.

fairseq's ``SpeechToTextDataset`` reads the ``src_text`` column but never batches it. This
subclass encodes it with the source SentencePiece model and dictionary and adds to each batch
``transcript`` ``[B, S]`` (ending in EOS), ``transcript_lengths``, ``transcript_ntokens`` and
``net_input["prev_transcript_tokens"]`` (EOS first, teacher forcing for the ASR decoder), in the
same order as the translation target, so one forward pass serves ST, CTC and ASR.
"""

from __future__ import annotations

from argparse import Namespace
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from fairseq.data import ConcatDataset, Dictionary, data_utils, encoders
from fairseq.data.audio.speech_to_text_dataset import (
    S2TDataConfig,
    SpeechToTextDataset,
    SpeechToTextDatasetCreator,
    SpeechToTextDatasetItem,
)
from torch import Tensor


@dataclass
class TranscriptItem(SpeechToTextDatasetItem):
    transcript: Tensor | None = None


class TranscriptSpeechToTextDataset(SpeechToTextDataset):
    """``SpeechToTextDataset`` plus transcript targets (see module docstring)."""

    def __init__(self, *args: Any, src_dict: Dictionary, src_bpe_tokenizer: Any = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.src_texts is None:
            raise ValueError(f"split {self.split!r} has no src_text column")
        self.src_dict = src_dict
        self.src_bpe_tokenizer = src_bpe_tokenizer

    def get_transcript(self, index: int) -> Tensor:
        text = self.tokenize(self.src_bpe_tokenizer, self.src_texts[index])
        return self.src_dict.encode_line(text, add_if_not_exist=False, append_eos=True).long()

    def __getitem__(self, index: int) -> TranscriptItem:
        item = super().__getitem__(index)
        return TranscriptItem(**vars(item), transcript=self.get_transcript(index))

    def collater(self, samples: list[TranscriptItem], return_order: bool = False) -> dict:
        if len(samples) == 0:
            return {}
        out = super().collater(samples, return_order=True)
        order = out["order"] if return_order else out.pop("order")
        transcripts = [s.transcript for s in samples]
        pad, eos = self.src_dict.pad(), self.src_dict.eos()
        out["transcript"] = data_utils.collate_tokens(transcripts, pad, eos).index_select(0, order)
        out["transcript_lengths"] = torch.tensor(
            [t.numel() for t in transcripts], dtype=torch.long
        ).index_select(0, order)
        out["transcript_ntokens"] = int(out["transcript_lengths"].sum())
        out["net_input"]["prev_transcript_tokens"] = data_utils.collate_tokens(
            transcripts, pad, eos, move_eos_to_beginning=True
        ).index_select(0, order)
        return out

    def batch_by_size(
        self, indices: np.ndarray, max_tokens: int | None = None,
        max_sentences: int | None = None, required_batch_size_multiple: int = 1,
    ) -> list[np.ndarray]:
        """fairseq's batching, but keeping the last batch when its size is not a multiple of
        ``required_batch_size_multiple``: fairseq drops it, which silently leaves the shortest
        utterances out of every epoch, validation and ``fairseq-generate``."""
        batches = list(
            super().batch_by_size(indices, max_tokens, max_sentences, required_batch_size_multiple)
        )
        n_batched = sum(len(batch) for batch in batches)
        if n_batched < len(indices):  # batches are consecutive runs of ``indices``
            batches.append(np.asarray(indices[n_batched:], dtype=np.int64))
        return batches


def build_src_bpe(data_cfg: S2TDataConfig) -> Any:
    """The source tokenizer from ``src_bpe_tokenizer`` in config.yaml (None if absent)."""
    spec = data_cfg.config.get("src_bpe_tokenizer")
    if spec is None:
        return None
    return encoders.build_bpe(Namespace(**data_cfg._auto_convert_to_abs_path(spec)))


def check_no_specaugment(data_cfg: S2TDataConfig, split: str) -> None:
    """Refuse SpecAugment on an evaluation split: it would mask the audio that validation,
    fairseq-generate and BLEU are measured on."""
    transforms = data_cfg.get_feature_transforms(split, False).get("feature_transforms") or []
    if "specaugment" in transforms:
        raise ValueError(
            f"{data_cfg.root}: the data config (--config-yaml) applies specaugment to the "
            f"evaluation split {split!r} through 'feature_transforms' (or 'transforms'); list "
            f"it under '_train' only, e.g. feature_transforms: {{_train: [global_cmvn, "
            f"specaugment], '*': [global_cmvn]}}"
        )


def load_transcript_dataset(
    root: str,
    data_cfg: S2TDataConfig,
    splits: str,
    tgt_dict: Dictionary,
    src_dict: Dictionary,
    is_train_split: bool,
) -> TranscriptSpeechToTextDataset | ConcatDataset:
    """Read ``<root>/<split>.tsv`` for each comma-separated split (see architecture.md §2)."""
    bpe = encoders.build_bpe(Namespace(**data_cfg.bpe_tokenizer))
    pre = encoders.build_tokenizer(Namespace(**data_cfg.pre_tokenizer))
    src_bpe = build_src_bpe(data_cfg)
    audio_root = Path(data_cfg.audio_root)
    datasets = []
    for split in splits.split(","):
        if not is_train_split:
            check_no_specaugment(data_cfg, split)
        rows = SpeechToTextDatasetCreator._load_samples_from_tsv(root, split)
        for n, row in enumerate(rows, start=2):
            missing = [
                c for c in ("id", "audio", "n_frames", "src_text", "tgt_text") if row.get(c) is None
            ]
            if missing:
                raise ValueError(f"{Path(root) / split}.tsv line {n}: missing column(s) {missing}")
        datasets.append(
            TranscriptSpeechToTextDataset(
                split=split,
                is_train_split=is_train_split,
                cfg=data_cfg,
                audio_paths=[(audio_root / r["audio"]).as_posix() for r in rows],
                n_frames=[int(r["n_frames"]) for r in rows],
                src_texts=[r["src_text"] for r in rows],
                tgt_texts=[r["tgt_text"] for r in rows],
                speakers=[r.get("speaker", "") for r in rows],
                ids=[r["id"] for r in rows],
                tgt_dict=tgt_dict,
                pre_tokenizer=pre,
                bpe_tokenizer=bpe,
                src_dict=src_dict,
                src_bpe_tokenizer=src_bpe,
            )
        )
    return datasets[0] if len(datasets) == 1 else ConcatDataset(datasets)
