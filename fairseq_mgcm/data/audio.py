"""Audio helpers shared by the corpus maker and the MuST-C preparation.

Both sides need the same sample rate, resampler and wav writer; they live here so neither
imports the other (the preparation must not depend on the speech synthesiser).
"""
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional

from fairseq_mgcm.atomic_files import atomic_path

SAMPLE_RATE = 16000


def resample_int16(audio: np.ndarray, orig_rate: int, new_rate: int) -> np.ndarray:
    """Resample int16 audio with torchaudio's band-limited sinc interpolation."""
    waveform = torch.from_numpy(audio.astype(np.float32) / 32768.0)
    out = torchaudio.functional.resample(waveform, orig_rate, new_rate).numpy()
    return np.clip(np.round(out * 32768.0), -32768, 32767).astype(np.int16)


def write_wav(path: Path, audio: np.ndarray, sample_rate: int) -> None:
    """Write int16 mono audio as a 16-bit PCM wav, atomically."""
    with atomic_path(path) as tmp:
        sf.write(tmp, audio, sample_rate, subtype="PCM_16", format="WAV")
