"""SimulEval's speech source, read as mono: multi-channel wavs are down-mixed with a warning.

SimulEval 1.1.4 reads each source wav with ``soundfile.read``: a stereo file becomes a list of
``[left, right]`` pairs, sent to the agent a segment at a time. Feature extraction flattens
what it gets, so the two channels would be interleaved into one stream at twice the length and
the model would hear noise (BLEU 40.5 -> 2.9 in issue 20, with no warning). This module
registers, under SimulEval's own key ``speech-to-text`` (the one it picks for a speech-to-text
agent, and for ``--dataloader speech-to-text``), a reader that down-mixes each file as data
preparation does (``fairseq_mgcm.data.audio.downmix``, the mean over channels) and warns with
the file and its channel count. Importing the agent imports this module. Sample counts, hence
delays, are unchanged: SimulEval counts a frame of all channels as one sample.
"""
from __future__ import annotations

import logging
from pathlib import Path

import soundfile
from simuleval.data.dataloader import register_dataloader
from simuleval.data.dataloader.s2t_dataloader import SpeechToTextDataloader

from fairseq_mgcm.data.audio import downmix, downmix_warning

logger = logging.getLogger(__name__)

__all__ = ["MonoSpeechToTextDataloader"]


@register_dataloader("speech-to-text")
class MonoSpeechToTextDataloader(SpeechToTextDataloader):
    """SimulEval's speech-to-text source lists, each wav read as mono float samples."""

    def preprocess_source(self, source: Path | str) -> list[float]:
        samples, _ = soundfile.read(source, dtype="float32", always_2d=True)
        if samples.shape[1] > 1:
            logger.warning(downmix_warning(source, samples.shape[1]))
        return downmix(samples).tolist()
