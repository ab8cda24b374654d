"""Audio helpers shared by the corpus maker, the MuST-C preparation and the SimulEval agent.

Both data sides need the same sample rate, resampler and wav writer; they live here so neither
imports the other (the preparation must not depend on the speech synthesiser). Preparation and
the agent down-mix multi-channel audio the same way (:func:`downmix`), so a stereo wav gives the
features of its mono mix in both.
"""
import os
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


def downmix(samples: np.ndarray) -> np.ndarray:
    """Mono float32 samples ``[frames]`` from ``[frames]`` or ``[frames, channels]``: the mean
    over channels (a channel's own samples when there is one).

    Feature extraction expects one sample per time step; the interleaved channels of a stereo
    array read as one stream would be a different signal at twice the length."""
    samples = np.asarray(samples, dtype=np.float32)
    if samples.ndim == 1:
        return samples
    if samples.ndim != 2:
        raise ValueError(f"audio samples of shape {samples.shape}: expected [frames, channels]")
    return samples[:, 0].copy() if samples.shape[1] == 1 else samples.mean(axis=1, dtype=np.float32)


def downmix_warning(source: str | os.PathLike, channels: int) -> str:
    """The warning for a multi-channel file (preparation and the agent say the same)."""
    return f"{source} has {channels} channels; averaging them to mono"
