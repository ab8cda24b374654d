"""Cut segments out of talk wavs, compute 80-dim Kaldi fbank, store them in an uncompressed zip.

fairseq's ``get_features_or_waveform("<zip>:<offset>:<length>")`` reads ``length`` bytes at
``offset`` of the zip and ``np.load``s them, so each entry must be a stored (uncompressed)
``.npy`` and the manifest must point at its data, not at its zip header.
"""
import io
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from torchaudio.compliance import kaldi

from fairseq_mgcm.data.audio import SAMPLE_RATE, downmix, resample_int16
from fairseq_mgcm.data.errors import CorpusError
from fairseq_mgcm.data.mustc.reader import Talk, clamped_samples

N_MEL_BINS = 80


def read_segments(talk: Talk) -> list[np.ndarray]:
    """Each segment of ``talk`` as float32 samples in [-1, 1] at 16 kHz, mono (the channels'
    mean, as the agent down-mixes: ``audio.downmix``).

    Only the needed frames are read. Samples are cut as fairseq's ``prep_mustc_data.py`` cuts
    them: ``start = int(offset * rate)``, ``length = int(duration * rate)`` (truncated, at the
    wav's own rate). Segments ending within the tolerance past the end of the file are clamped;
    ``reader.read_split`` has refused anything further, and anything shorter than a window.
    """
    out = []
    try:
        with sf.SoundFile(str(talk.wav)) as f:
            rate, frames = f.samplerate, f.frames
            for seg in talk.segments:
                start, stop = clamped_samples(seg, rate, frames)
                f.seek(start)
                audio = downmix(f.read(stop - start, dtype="float32", always_2d=True))
                if len(audio) < stop - start:
                    raise CorpusError(f"{talk.wav}: audio ends early (truncated file?) while "
                                      f"reading segment {seg.id}")
                if rate != SAMPLE_RATE:
                    int16 = np.clip(np.round(audio * 32768.0), -32768, 32767).astype(np.int16)
                    audio = resample_int16(int16, rate, SAMPLE_RATE).astype(np.float32) / 32768.0
                out.append(audio)
    except (sf.LibsndfileError, RuntimeError, OSError) as e:
        raise CorpusError(f"{talk.wav}: cannot read audio ({e})") from e
    return out


def fbank(audio: np.ndarray) -> np.ndarray:
    """80-dim log-mel filterbank (25 ms window, 10 ms shift) on the int16 scale, float32 [T, 80]."""
    waveform = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)).unsqueeze(0)
    feats = kaldi.fbank(waveform * 32768.0, num_mel_bins=N_MEL_BINS,
                        sample_frequency=SAMPLE_RATE)
    return feats.numpy().astype(np.float32)


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


@dataclass(frozen=True)
class TalkFeatures:
    """What a worker sends back for one talk: the .npy bytes, and sums for global CMVN."""

    ids: list[str]
    npy: list[bytes]
    n_frames: list[int]
    frame_sum: np.ndarray  # float64 [80]
    frame_sq_sum: np.ndarray  # float64 [80]


def talk_features(talk: Talk) -> TalkFeatures:
    ids, blobs, n_frames = [], [], []
    total = np.zeros(N_MEL_BINS)
    total_sq = np.zeros(N_MEL_BINS)
    for seg, audio in zip(talk.segments, read_segments(talk)):
        feats = fbank(audio)
        ids.append(seg.id)
        blobs.append(npy_bytes(feats))
        n_frames.append(feats.shape[0])
        feats64 = feats.astype(np.float64)
        total += feats64.sum(axis=0)
        total_sq += (feats64 ** 2).sum(axis=0)
    return TalkFeatures(ids, blobs, n_frames, total, total_sq)


def stored_entry_offsets(zip_path: Path) -> dict[str, tuple[int, int]]:
    """``{member name: (byte offset of its data, byte length)}`` for a stored zip.

    The data starts after the member's local header, whose variable-length name and extra
    fields have to be read from the local header itself (they may differ from the central
    directory's, e.g. for zip64 entries).
    """
    offsets = {}
    with zipfile.ZipFile(zip_path) as zf, open(zip_path, "rb") as raw:
        for info in zf.infolist():
            if info.compress_type != zipfile.ZIP_STORED:
                raise ValueError(f"{zip_path}: member {info.filename} is compressed")
            raw.seek(info.header_offset)
            header = raw.read(30)
            if header[:4] != b"PK\x03\x04":
                raise ValueError(f"{zip_path}: bad local header for {info.filename}")
            name_len, extra_len = struct.unpack("<HH", header[26:30])
            offsets[info.filename] = (info.header_offset + 30 + name_len + extra_len,
                                      info.file_size)
    return offsets
