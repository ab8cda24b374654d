"""Speak English text with espeak-ng and return 16 kHz mono int16 audio.

espeak-ng is a formant synthesiser: robotic, but fast (~100x real time on one core), installable
with apt and deterministic, which is what a self-made test corpus needs. "Speakers" are
combinations of an English accent, a voice variant and a speaking rate.
"""
import random
import shutil
import struct
import subprocess
import sys
from dataclasses import dataclass

import numpy as np

from fairseq_mgcm.data.audio import SAMPLE_RATE, resample_int16
from fairseq_mgcm.data.errors import CorpusError

ESPEAK = "espeak-ng"

# English accents shipped with espeak-ng (the mbrola voices need extra packages, so none here).
ACCENTS = ("en-us", "en-gb", "en-gb-x-rp", "en-gb-scotland", "en-029", "en-us-nyc",
           "en-gb-x-gbclan", "en-gb-x-gbcwmd")
# Voice variants that still sound like plain speech (no whisper, croak or robots).
VARIANTS = ("", "f2", "f3", "f4", "m2", "m3", "m4", "m6")
SPEED_RANGE = (140, 190)  # words per minute


@dataclass(frozen=True)
class Speaker:
    accent: str
    variant: str
    speed: int

    @property
    def voice(self) -> str:
        return f"{self.accent}+{self.variant}" if self.variant else self.accent

    @property
    def speaker_id(self) -> str:
        return f"spk.{self.voice}.{self.speed}"


def random_speaker(
    rng: random.Random, accents: tuple[str, ...] = ACCENTS, variants: tuple[str, ...] = VARIANTS
) -> Speaker:
    return Speaker(rng.choice(accents), rng.choice(variants), rng.randint(*SPEED_RANGE))


def _listed(espeak: str, selector: str, column: int) -> set[str]:
    result = subprocess.run([espeak, f"--voices={selector}"], capture_output=True, text=True,
                            check=False, timeout=60)
    rows = [line.split() for line in result.stdout.splitlines()[1:]]
    return {row[column] for row in rows if len(row) > column}


def available_voices(espeak: str = ESPEAK) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The accents and variants of our lists that this espeak-ng has.

    espeak-ng silently falls back to a default voice for unknown names, which would make the
    speaker ids lie; older releases lack some accents, so check instead of assuming.
    """
    languages = _listed(espeak, "en", 1)
    variant_files = {name.split("/")[-1] for name in _listed(espeak, "variant", 4)}
    accents = tuple(a for a in ACCENTS if a in languages)
    variants = tuple(v for v in VARIANTS if not v or v in variant_files)
    if not accents:
        raise CorpusError(f"{espeak} lists none of the English voices {', '.join(ACCENTS)} "
                          f"(see '{espeak} --voices=en'); is espeak-ng-data installed?")
    missing = [a for a in ACCENTS if a not in accents] + [v for v in VARIANTS if v not in variants]
    if missing:
        print(f"warning: {espeak} lacks the voices {', '.join(missing)}; using the others",
              file=sys.stderr)
    return accents, variants


def require_espeak() -> str:
    """The path of the espeak-ng binary, or a CorpusError saying how to install it."""
    path = shutil.which(ESPEAK)
    if path is None:
        raise CorpusError(
            f"the speech synthesiser '{ESPEAK}' was not found on PATH; install it with "
            f"'apt-get install espeak-ng' (Debian/Ubuntu) or 'brew install espeak-ng' (macOS)"
        )
    return path


def _parse_wav(data: bytes, text: str) -> tuple[np.ndarray, int]:
    """Parse the 16-bit PCM wav espeak-ng writes to stdout.

    On stdout espeak-ng cannot seek back to fill in the sizes, so the RIFF and data sizes are
    placeholders; walk the chunks and take everything after the ``data`` header.
    """
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise CorpusError(f"{ESPEAK} did not return a wav file for the text {text!r}")
    pos, sample_rate = 12, 0
    while pos + 8 <= len(data):
        chunk, size = data[pos:pos + 4], struct.unpack("<I", data[pos + 4:pos + 8])[0]
        body = pos + 8
        if chunk == b"fmt ":
            channels, sample_rate = struct.unpack("<HI", data[body + 2:body + 8])
            bits = struct.unpack("<H", data[body + 14:body + 16])[0]
            if channels != 1 or bits != 16:
                raise CorpusError(f"{ESPEAK} wrote {channels} channels of {bits}-bit audio; "
                                  f"expected mono 16-bit")
        elif chunk == b"data":
            pcm = data[body:]
            pcm = pcm[: len(pcm) // 2 * 2]
            return np.frombuffer(pcm, dtype="<i2").copy(), sample_rate
        pos = body + size + (size & 1)
    raise CorpusError(f"{ESPEAK} returned a wav without audio data for the text {text!r}")


def _trim_silence(audio: np.ndarray, sample_rate: int, threshold: int = 64,
                  margin_s: float = 0.05) -> np.ndarray:
    """Cut espeak's leading/trailing silence (keeping a short margin) so segments are tight."""
    loud = np.flatnonzero(np.abs(audio.astype(np.int32)) > threshold)
    if loud.size == 0:
        return audio
    margin = int(margin_s * sample_rate)
    return audio[max(0, loud[0] - margin): loud[-1] + 1 + margin]


def synthesize(text: str, speaker: Speaker, espeak: str = ESPEAK) -> np.ndarray:
    """Speak ``text`` and return int16 samples at 16 kHz, mono, with edge silence trimmed."""
    try:
        result = subprocess.run(
            [espeak, "-v", speaker.voice, "-s", str(speaker.speed), "--stdout"],
            input=text.encode("utf-8"), capture_output=True, check=False, timeout=120,
        )
    except FileNotFoundError:
        require_espeak()
        raise
    if result.returncode != 0:
        message = result.stderr.decode("utf-8", "replace").strip()
        raise CorpusError(f"{ESPEAK} failed (exit {result.returncode}) on {text!r} with voice "
                          f"{speaker.voice}: {message}")
    audio, sample_rate = _parse_wav(result.stdout, text)
    audio = _trim_silence(audio, sample_rate)
    if sample_rate != SAMPLE_RATE:
        audio = resample_int16(audio, sample_rate, SAMPLE_RATE)
    if audio.size == 0:
        raise CorpusError(f"{ESPEAK} produced no audio for the text {text!r}")
    return audio

