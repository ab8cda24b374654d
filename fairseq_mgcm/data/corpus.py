"""Write a speech translation corpus in the MuST-C v1.0 layout, spoken by espeak-ng.

    <out_root>/en-de/data/<split>/wav/<talk>.wav       16 kHz mono int16, one per talk
    <out_root>/en-de/data/<split>/txt/<split>.yaml     {duration, offset, speaker_id, wav} a line
    <out_root>/en-de/data/<split>/txt/<split>.{en,de}  line-aligned with the yaml

A "talk" is ``utts_per_talk`` sentences said by one speaker, with short pauses between them, so
the preparation has to cut segments out of long files exactly as it does for MuST-C.

Resumable: each talk's wav is written atomically, then a record of what it contains (under
``<out_root>/en-de/.work``); a re-run re-uses talks whose record matches, and writes the txt
files last.
"""
import json
import random
import sys
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from fairseq_mgcm.data.atomic import write_lines, write_text, write_wav
from fairseq_mgcm.data.parallel import ordered_map
from fairseq_mgcm.data.progress import Progress
from fairseq_mgcm.data.speech_synthesis import (
    SAMPLE_RATE,
    Speaker,
    available_voices,
    random_speaker,
    require_espeak,
    synthesize,
)
from fairseq_mgcm.data.text_sources import SPLITS, grammar_splits

LANG_DIR = "en-de"
ALIGN = SAMPLE_RATE // 1000  # segment boundaries on whole milliseconds: exact in the yaml
_RECORD_VERSION = 1


@dataclass(frozen=True)
class TalkJob:
    split: str
    talk: str
    speaker: Speaker
    pairs: tuple[tuple[str, str], ...]
    wav_path: str
    record_path: str
    seed: int


def _pad_to_align(audio: np.ndarray) -> np.ndarray:
    return np.pad(audio, (0, (-len(audio)) % ALIGN))


def _silence(rng: random.Random, low: float, high: float) -> np.ndarray:
    n = int(rng.uniform(low, high) * SAMPLE_RATE)
    return np.zeros(n - n % ALIGN, dtype=np.int16)


def _synthesize_talk(job: TalkJob) -> list[dict]:
    """Speak one talk, write its wav and record atomically, return its yaml entries."""
    rng = random.Random(f"{job.seed}/{job.split}/{job.talk}")
    pieces = [_silence(rng, 0.2, 0.5)]
    entries = []
    offset = len(pieces[0])
    for english, _ in job.pairs:
        speech = _pad_to_align(synthesize(english, job.speaker))
        entries.append({"duration": len(speech) / SAMPLE_RATE, "offset": offset / SAMPLE_RATE,
                        "speaker_id": job.speaker.speaker_id, "wav": f"{job.talk}.wav"})
        gap = _silence(rng, 0.3, 0.8)
        pieces += [speech, gap]
        offset += len(speech) + len(gap)
    audio = np.concatenate(pieces)
    # A faint noise floor, as in any recording; it also keeps log-mel energies finite in pauses.
    noise = np.random.default_rng(zlib.crc32(job.talk.encode())).normal(0.0, 2.0, len(audio))
    audio = np.clip(audio.astype(np.float64) + noise, -32768, 32767).astype(np.int16)
    record = {"version": _RECORD_VERSION, "job": _job_key(job), "entries": entries}
    write_wav(Path(job.wav_path), audio, SAMPLE_RATE)
    write_text(Path(job.record_path), json.dumps(record))  # last: it vouches for the wav
    return entries


def _job_key(job: TalkJob) -> dict:
    return {"speaker": asdict(job.speaker), "pairs": [list(p) for p in job.pairs],
            "seed": job.seed}


def _finished_entries(job: TalkJob) -> list[dict] | None:
    """The yaml entries of a talk synthesised by an earlier run, if it is complete and current."""
    record_path, wav_path = Path(job.record_path), Path(job.wav_path)
    if not (record_path.is_file() and wav_path.is_file()):
        return None
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if record.get("version") != _RECORD_VERSION or record.get("job") != _job_key(job):
        return None
    return record["entries"]


Voices = tuple[tuple[str, ...], tuple[str, ...]]  # (accents, variants) espeak-ng has


def _speaker_pool(voices: Voices, n_speakers: int, seed: int) -> list[Speaker]:
    """``n_speakers`` distinct fixed speakers, or [] for a fresh random speaker per talk."""
    pool: list[Speaker] = []
    rng = random.Random(f"{seed}/speaker-pool")
    for _ in range(100 * n_speakers):
        if len(pool) == n_speakers:
            break
        speaker = random_speaker(rng, *voices)
        if speaker not in pool:
            pool.append(speaker)
    return pool


def _talk_jobs(out_root: Path, split: str, pairs: list, utts_per_talk: int, seed: int,
               voices: Voices, n_speakers: int = 0) -> list:
    split_dir = out_root / LANG_DIR / "data" / split
    work_dir = out_root / LANG_DIR / ".work" / split
    jobs = []
    pool = _speaker_pool(voices, n_speakers, seed)
    for start in range(0, len(pairs), utts_per_talk):
        index = start // utts_per_talk + 1
        talk = f"ted_{split}_{index:05d}"
        rng = random.Random(f"{seed}/{split}/{talk}/speaker")
        speaker = rng.choice(pool) if pool else random_speaker(rng, *voices)
        jobs.append(TalkJob(split, talk, speaker, tuple(pairs[start:start + utts_per_talk]),
                            str(split_dir / "wav" / f"{talk}.wav"),
                            str(work_dir / f"{talk}.json"), seed))
    return jobs


def _yaml_line(entry: dict) -> str:
    return (f"- {{duration: {entry['duration']:.6f}, offset: {entry['offset']:.6f}, "
            f"speaker_id: {entry['speaker_id']}, wav: {entry['wav']}}}")


def write_split(
    out_root: Path, split: str, pairs: list, utts_per_talk: int = 10, seed: int = 0,
    jobs: int = 1, progress_every: int = 500, voices: Voices | None = None, n_speakers: int = 0,
) -> None:
    """Synthesise one split (re-using finished talks) and write its txt files last."""
    voices = voices if voices is not None else available_voices()
    talk_jobs = _talk_jobs(out_root, split, pairs, utts_per_talk, seed, voices, n_speakers)
    todo = [job for job in talk_jobs if _finished_entries(job) is None]
    reused = len(talk_jobs) - len(todo)
    if reused:
        print(f"[make_corpus] {split}: re-using {reused} finished talks", file=sys.stderr)
    progress = Progress(f"make_corpus {split}", sum(len(j.pairs) for j in todo),
                        every=progress_every)
    for job, _ in zip(todo, ordered_map(_synthesize_talk, todo, jobs)):
        progress.update(len(job.pairs))
    progress.close()
    yaml_lines, en_lines, de_lines = [], [], []
    for job in talk_jobs:
        entries = _finished_entries(job)
        assert entries is not None, f"talk {job.talk} was not written"
        yaml_lines += [_yaml_line(e) for e in entries]
        en_lines += [en for en, _ in job.pairs]
        de_lines += [de for _, de in job.pairs]
    txt_dir = out_root / LANG_DIR / "data" / split / "txt"
    write_lines(txt_dir / f"{split}.en", en_lines, if_changed=True)
    write_lines(txt_dir / f"{split}.de", de_lines, if_changed=True)
    write_lines(txt_dir / f"{split}.yaml", yaml_lines, if_changed=True)  # last


def write_corpus(
    out_root: Path, splits: dict[str, list], utts_per_talk: int = 10, seed: int = 0,
    jobs: int = 1, progress_every: int = 500, n_speakers: int = 0,
) -> Path:
    """Write every split in ``splits`` ({name: [(en, de), ...]}); returns ``out_root``.

    ``n_speakers`` > 0 draws each talk's speaker from that many fixed speakers (an easier,
    MuST-C-like setting); 0 gives every talk a fresh random accent, variant and speed.
    """
    voices = available_voices(require_espeak())
    out_root = Path(out_root)
    for split, pairs in splits.items():
        write_split(out_root, split, pairs, utts_per_talk, seed, jobs, progress_every, voices,
                    n_speakers)
    return out_root


def make_corpus(
    out_root: Path | str, n_train: int = 1000, n_dev: int = 100, n_test: int = 100,
    seed: int = 0, utts_per_talk: int = 10, jobs: int = 1, progress_every: int = 500,
    n_speakers: int = 0,
) -> Path:
    """Make a grammar corpus (train / dev / tst-COMMON) in MuST-C layout under ``out_root``.

    The quick way for tests and recipes to get real audio: 80 utterances take a few seconds.
    """
    splits = grammar_splits(n_train, n_dev, n_test, seed)
    splits = {name: splits[name] for name in SPLITS if splits[name]}
    return write_corpus(Path(out_root), splits, utts_per_talk, seed, jobs, progress_every,
                        n_speakers)
