"""Helpers for the data tests: hand-made MuST-C-layout corpora and small readers."""
from pathlib import Path

import numpy as np
import soundfile as sf
import yaml


def write_mustc(
    root: Path, split: str, talks: dict[str, tuple[int, float]],
    segments: list[tuple[str, float, float, str, str]],
) -> Path:
    """Write ``root/en-de/data/<split>`` by hand.

    talks: {talk name: (sample rate, seconds)} (a quiet chirp, so fbank is not constant);
    segments: (talk, offset, duration, english, german) in yaml order.
    """
    split_dir = root / "en-de" / "data" / split
    (split_dir / "wav").mkdir(parents=True, exist_ok=True)
    (split_dir / "txt").mkdir(parents=True, exist_ok=True)
    for name, (rate, seconds) in talks.items():
        t = np.arange(int(rate * seconds)) / rate
        audio = 0.1 * np.sin(2 * np.pi * (200 + 300 * t) * t)
        sf.write(split_dir / "wav" / f"{name}.wav", audio, rate, subtype="PCM_16")
    yaml_lines = [f"- {{duration: {d:.6f}, offset: {o:.6f}, speaker_id: spk.1, wav: {t}.wav}}"
                  for t, o, d, _, _ in segments]
    txt = split_dir / "txt"
    (txt / f"{split}.yaml").write_text("".join(x + "\n" for x in yaml_lines))
    (txt / f"{split}.en").write_text("".join(s[3] + "\n" for s in segments))
    (txt / f"{split}.de").write_text("".join(s[4] + "\n" for s in segments))
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
