"""Helpers for the data tests: hand-made MuST-C-layout corpora and small readers."""
from pathlib import Path

import numpy as np
import soundfile as sf
import yaml


def write_mustc(
    root: Path, split: str, talks: dict[str, tuple[int, float]],
    segments: list[tuple[str, float, float, str, str]], tgt_lang: str = "de",
    amplitude: float = 0.1,
) -> Path:
    """Write ``root/en-<tgt_lang>/data/<split>`` by hand.

    talks: {talk name: (sample rate, seconds)} (a quiet chirp, so fbank is not constant);
    segments: (talk, offset, duration, english, german) in yaml order.
    """
    split_dir = root / f"en-{tgt_lang}" / "data" / split
    (split_dir / "wav").mkdir(parents=True, exist_ok=True)
    (split_dir / "txt").mkdir(parents=True, exist_ok=True)
    for name, (rate, seconds) in talks.items():
        t = np.arange(int(rate * seconds)) / rate
        audio = amplitude * np.sin(2 * np.pi * (200 + 300 * t) * t)
        sf.write(split_dir / "wav" / f"{name}.wav", audio, rate, subtype="PCM_16")
    yaml_lines = [f"- {{duration: {d:.6f}, offset: {o:.6f}, speaker_id: spk.1, wav: {t}.wav}}"
                  for t, o, d, _, _ in segments]
    txt = split_dir / "txt"
    (txt / f"{split}.yaml").write_text("".join(x + "\n" for x in yaml_lines))
    (txt / f"{split}.en").write_text("".join(s[3] + "\n" for s in segments))
    (txt / f"{split}.{tgt_lang}").write_text("".join(s[4] + "\n" for s in segments))
    return root


def small_mustc(root: Path, rate: int = 16000, splits=("train", "dev")) -> Path:
    """Two talks per split, three segments each."""
    for split in splits:
        talks = {f"ted_{split}_{i}": (rate, 4.0) for i in (1, 2)}
        segments = [(f"ted_{split}_{i}", 0.1 + 1.2 * j, 1.0, f"hello world number {j}",
                     f"hallo welt nummer {j}") for i in (1, 2) for j in range(3)]
        write_mustc(root, split, talks, segments)
    return root


def read_tsv(path: Path) -> list[dict[str, str]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    header = lines[0].split("\t")
    return [dict(zip(header, line.split("\t"))) for line in lines[1:]]


def read_yaml(path: Path) -> list[dict]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def mtimes(root: Path) -> dict[str, int]:
    """mtime_ns of every file under ``root`` (to prove a re-run rewrote nothing)."""
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in sorted(root.rglob("*"))
            if p.is_file()}


_EN = ("the cat sees a dog", "my friend reads the book", "we sing a song today",
       "a small bird flies home", "the old man drinks tea", "she writes a long letter")
_DE = ("die katze sieht einen hund", "mein freund liest das buch", "wir singen heute ein lied",
       "ein kleiner vogel fliegt heim", "der alte mann trinkt tee",
       'sie schreibt "einen langen brief"')


def varied_mustc(root: Path, splits=("train", "dev", "tst-COMMON", "tst-HE"),
                 tgt_lang: str = "de", talks_per_split: int = 2, segs_per_talk: int = 3) -> Path:
    """Like ``small_mustc`` but with varied sentences (so SentencePiece has something to learn)
    and any target language folder ``en-<tgt_lang>``."""
    for split in splits:
        talks = {f"ted_{split}_{i}": (16000, 1.0 + 1.1 * segs_per_talk)
                 for i in range(1, talks_per_split + 1)}
        segments = []
        for i in range(1, talks_per_split + 1):
            for j in range(segs_per_talk):
                k = (i * segs_per_talk + j) % len(_EN)
                segments.append((f"ted_{split}_{i}", 0.1 + 1.1 * j, 1.0, f"{_EN[k]} {j}",
                                 f"{_DE[k]} {j} ({tgt_lang})"))
        write_mustc(root, split, talks, segments, tgt_lang=tgt_lang)
    return root


def real_speaker(talk: str) -> str:
    """MuST-C's speaker id for a talk: ``ted_767`` is said by ``spk.767``."""
    return f"spk.{talk.rsplit('_', 1)[-1]}"


def write_release_like(
    root: Path, split: str, talks: dict[str, list[tuple[float, float]]], order=None,
    speaker=lambda talk: "spk_1", word_counts: bool = False, tgt_lang: str = "de",
) -> list[tuple[str, float, float, str, str]]:
    """A split in the MuST-C v1.0 yaml format; the real release's ``rW``/``uW`` keys with
    ``word_counts``, its ``spk.767`` speaker ids with ``speaker=real_speaker``.

    talks: {talk: [(offset, duration), ...]} in time order; order: (talk, index) pairs giving
    the yaml's line order (default: time order). Each segment's texts name its talk and time,
    so a misaligned text is visible. Returns the segments in yaml order.
    """
    split_dir = root / f"en-{tgt_lang}" / "data" / split
    (split_dir / "wav").mkdir(parents=True, exist_ok=True)
    (split_dir / "txt").mkdir(parents=True, exist_ok=True)
    for name, segs in talks.items():
        seconds = max(o + d for o, d in segs) + 0.5
        t = np.arange(int(16000 * seconds)) / 16000
        sf.write(split_dir / "wav" / f"{name}.wav",
                 0.1 * np.sin(2 * np.pi * (200 + 30 * t) * t), 16000, subtype="PCM_16")
    order = order or [(name, i) for name, segs in talks.items() for i in range(len(segs))]
    segments, yaml_lines = [], []
    for name, i in order:
        offset, duration = talks[name][i]
        segments.append((name, offset, duration, f"{name} says {_EN[i % len(_EN)]} at {offset}",
                         f"{name} sagt {_DE[i % len(_DE)]} um {offset}"))
        counts = f"rW: {3 + i}, uW: {i % 2}, " if word_counts else ""
        yaml_lines.append(f"- {{duration: {duration:.6f}, offset: {offset:.6f}, {counts}"
                          f"speaker_id: {speaker(name)}, wav: {name}.wav}}")
    txt = split_dir / "txt"
    (txt / f"{split}.yaml").write_text("".join(x + "\n" for x in yaml_lines))
    (txt / f"{split}.en").write_text("".join(s[3] + "\n" for s in segments))
    (txt / f"{split}.{tgt_lang}").write_text("".join(s[4] + "\n" for s in segments))
    return segments
