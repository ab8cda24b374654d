"""Preparation step: the whole talks of an evaluation split, for long-form evaluation.

Writes ``simuleval/<split>-talks/`` (layout: ``fairseq_mgcm/longform/talks.py``): each talk's
whole wav at 16 kHz mono, and its reference sentences in time order with their offsets and
durations. The segmented ``simuleval/<split>/`` cuts each sentence out of its talk; here the
agent hears the talk as it was given, silences and all, and must find the sentences itself.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import soundfile as sf

from fairseq_mgcm.data.audio import SAMPLE_RATE, downmix, resample_int16, write_wav
from fairseq_mgcm.data.errors import CorpusError
from fairseq_mgcm.data.mustc import stages
from fairseq_mgcm.data.mustc.reader import SplitData
from fairseq_mgcm.data.mustc.reader import Talk as CorpusTalk
from fairseq_mgcm.data.progress import Progress
from fairseq_mgcm.longform.talks import (
    SENTENCES_TEXT,
    SENTENCES_YAML,
    Sentence,
    Talk,
    in_time_order,
    talks_folder,
    write_talk_lists,
)

__all__ = ["talk_audio", "talks_of", "talks_stage"]

_VERSION = 1  # bump when what this step writes changes, to redo it


def talks_of(data: SplitData) -> list[Talk]:
    """Each talk of the split with its sentences sorted by offset as a number."""
    talks = []
    for talk in data.talks:
        sentences = in_time_order(Sentence(seg.tgt_text, seg.offset, seg.duration)
                                  for seg in talk.segments)
        talks.append(Talk(talk.name, f"wav/{talk.name}.wav", sentences))
    return talks


def talk_audio(talk: CorpusTalk) -> np.ndarray:
    """The whole talk as int16 samples at 16 kHz, mono (the channels' mean, as the segments)."""
    try:
        with sf.SoundFile(str(talk.wav)) as f:
            rate = f.samplerate
            if rate == SAMPLE_RATE and f.channels == 1 and f.subtype == "PCM_16":
                return f.read(dtype="int16")  # the samples as they are
            audio = downmix(f.read(dtype="float32", always_2d=True))
    except (sf.LibsndfileError, RuntimeError, OSError) as e:
        raise CorpusError(f"{talk.wav}: cannot read audio ({e})") from e
    int16 = np.clip(np.round(audio * 32768.0), -32768, 32767).astype(np.int16)
    return int16 if rate == SAMPLE_RATE else resample_int16(int16, rate, SAMPLE_RATE)


def talks_stage(data: SplitData, out_dir: Path, inputs: dict[str, object],
                progress_every: int = 1000) -> None:
    """Write the split's talk folder unless its marker records the same ``inputs`` (the
    split's yaml and texts by content, its wavs by size and mtime) and talks."""
    folder = talks_folder(out_dir, data.name)
    stage = f"talks_{data.name}"
    talks = talks_of(data)
    outputs = [folder / name for name in ("source.txt", "target.txt", SENTENCES_YAML,
                                          SENTENCES_TEXT)]
    outputs += [folder / talk.wav for talk in talks]
    signature = {"version": _VERSION, "inputs": inputs,
                 "talks": stages.texts_signature(talk.name for talk in talks)}
    if stages.is_done(out_dir, stage, signature, outputs):
        print(f"[prepare] {data.name}: talk lists up to date, re-using them", file=sys.stderr,
              flush=True)
        return
    stages.clear(out_dir, stage)
    progress = Progress(f"talks {data.name}", len(talks), unit="talk", every=progress_every)
    for talk, corpus_talk in zip(talks, data.talks):
        write_wav(folder / talk.wav, talk_audio(corpus_talk), SAMPLE_RATE)
        progress.update()
    progress.close()
    write_talk_lists(folder, talks)
    stages.mark_done(out_dir, stage, signature)
