"""Start-up checks of the MT auxiliary against the data it will train on.

A wait-k MT path whose k is at least as long as every transcript never hides a source token
from any target position: it silently trains offline MT while the flags say simultaneous. That
is refused when the split is loaded, naming the flag and the longest transcript, rather than
clamped (a clamped k would differ from the one the user asked for and recorded in the
checkpoint).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fairseq.data import ConcatDataset
from fairseq.dataclass import FairseqDataclass

if TYPE_CHECKING:
    from fairseq_mgcm.data.multitask_dataset import TranscriptSpeechToTextDataset

__all__ = ["check_mt_lagging", "mt_lagging"]


def mt_lagging(model_cfg: FairseqDataclass) -> int | None:
    """The MT wait-k: ``--mt-waitk-lagging``, else ``--waitk-lagging`` (None: offline)."""
    k = getattr(model_cfg, "mt_waitk_lagging", None)
    return k if k is not None else getattr(model_cfg, "waitk_lagging", None)


def _longest_transcript(
    dataset: TranscriptSpeechToTextDataset | ConcatDataset, k: int
) -> int:
    """Tokens (with EOS) of the split's longest transcript, or any length above ``k`` once one
    is found. A SentencePiece piece never spans two words and covers at least one character
    (or one word's leading space), so ``words + 1 <= tokens <= characters + 2``: the word
    count settles the common case without tokenizing, and only texts whose character bound
    could beat the current maximum are tokenized."""
    parts = dataset.datasets if isinstance(dataset, ConcatDataset) else [dataset]
    texts = [(part, i, text) for part in parts for i, text in enumerate(part.src_texts or [])]
    if any(len(text.split()) + 1 > k for _, _, text in texts):
        return k + 1
    longest = 0
    for part, i, text in sorted(texts, key=lambda item: len(item[2]), reverse=True):
        if len(text) + 2 <= longest:
            break
        longest = max(longest, int(part.get_transcript(i).numel()))
        if longest > k:
            break
    return longest


def check_mt_lagging(
    split: str, dataset: TranscriptSpeechToTextDataset | ConcatDataset, model_cfg: FairseqDataclass
) -> None:
    """Raise if the MT wait-k reads every transcript of ``split`` whole from the first token."""
    k = mt_lagging(model_cfg)
    if k is None:
        return
    longest = _longest_transcript(dataset, k)
    if longest and k >= longest:
        flag = "--mt-waitk-lagging" if model_cfg.mt_waitk_lagging is not None else "--waitk-lagging"
        raise ValueError(
            f"{flag} {k} (the MT wait-k, in source tokens) is not smaller than the longest "
            f"transcript of split {split!r} ({longest} tokens with EOS): every MT path would "
            f"read the whole source, i.e. train offline MT. Pass --mt-waitk-lagging below "
            f"{longest}."
        )
