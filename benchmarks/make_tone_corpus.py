#!/usr/bin/env python
"""A small prepared corpus without a speech synthesiser: grammar text over word-keyed tones.

The GPU suite trains the paper config for a few hundred updates on a machine that has no
espeak-ng (and no network), so the corpus maker's speech cannot be made there. Instead every
English word of a grammar sentence (``data/synthetic/grammar.py``) becomes a short chord of two
tones whose pitches are a hash of the word, between short pauses, over a faint noise floor:
audio that carries the transcript, so the ST, CTC and ASR losses can all fall, at the cost of
writing a wav. The corpus is written in the MuST-C layout and turned into training data by the
project's own preparation (``fairseq_mgcm.data.mustc.prepare``: fbank, CMVN, SentencePiece,
manifests), so the data format has one writer.

Outputs, under ``OUT``: ``corpus/en-de/data/<split>/{wav,txt}`` (MuST-C layout) and ``data/``
(prepared: ``config.yaml``, ``<split>.tsv``, ``fbank80_<split>.zip``, ``spm_*``, ``gcmvn.npz``).

usage: python benchmarks/make_tone_corpus.py OUT [--train 400] [--dev 0] [--jobs 1]
"""
from __future__ import annotations

import argparse
import sys
import zlib
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fairseq_mgcm.atomic_files import write_lines  # noqa: E402
from fairseq_mgcm.data.audio import SAMPLE_RATE, write_wav  # noqa: E402
from fairseq_mgcm.data.mustc.prepare import prepare  # noqa: E402
from fairseq_mgcm.data.synthetic.corpus import lang_dir_name  # noqa: E402
from fairseq_mgcm.data.synthetic.text_sources import grammar_splits  # noqa: E402

WORD_S, PAUSE_S, GAP_S = 0.16, 0.04, 0.3  # per word, between words, between sentences
UTTS_PER_TALK = 20
VOCAB_SIZE = 256  # SentencePiece pieces at most (the grammar has a few hundred word forms)


def word_tone(word: str) -> np.ndarray:
    """``WORD_S`` seconds of a two-tone chord keyed by the word (the same word, the same sound)."""
    key = zlib.crc32(word.lower().encode())
    low, high = 200 + key % 800, 1200 + (key >> 10) % 2400  # Hz
    t = np.arange(int(WORD_S * SAMPLE_RATE)) / SAMPLE_RATE
    envelope = np.minimum(1.0, np.minimum(t, WORD_S - t) / 0.01)  # 10 ms ramps: no clicks
    return 6000 * envelope * (np.sin(2 * np.pi * low * t) + np.sin(2 * np.pi * high * t))


def sentence_audio(english: str) -> np.ndarray:
    pause = np.zeros(int(PAUSE_S * SAMPLE_RATE))
    pieces = [piece for word in english.split() for piece in (word_tone(word), pause)]
    return np.concatenate(pieces)


def write_split(lang_dir: Path, split: str, pairs: list[tuple[str, str]], seed: int) -> None:
    """Talks of ``UTTS_PER_TALK`` sentences, their yaml segment list and text files."""
    wav_dir, txt_dir = lang_dir / "data" / split / "wav", lang_dir / "data" / split / "txt"
    rng = np.random.default_rng(seed)
    gap = np.zeros(int(GAP_S * SAMPLE_RATE))
    yaml_lines = []
    for start in range(0, len(pairs), UTTS_PER_TALK):
        talk = f"tone_{split}_{start // UTTS_PER_TALK + 1:04d}"
        pieces, offset = [gap], len(gap)
        for english, _ in pairs[start:start + UTTS_PER_TALK]:
            speech = sentence_audio(english)
            yaml_lines.append(f"- {{duration: {len(speech) / SAMPLE_RATE:.6f}, offset: "
                              f"{offset / SAMPLE_RATE:.6f}, speaker_id: spk1, wav: {talk}.wav}}")
            pieces += [speech, gap]
            offset += len(speech) + len(gap)
        audio = np.concatenate(pieces) + rng.normal(0.0, 30.0, offset)  # noise floor
        write_wav(wav_dir / f"{talk}.wav", np.clip(audio, -32768, 32767).astype(np.int16),
                  SAMPLE_RATE)
    write_lines(txt_dir / f"{split}.en", [en for en, _ in pairs])
    write_lines(txt_dir / f"{split}.de", [de for _, de in pairs])
    write_lines(txt_dir / f"{split}.yaml", yaml_lines)  # last: the reader starts from it


def make_tone_corpus(out: Path, n_train: int, n_dev: int = 0, jobs: int = 1,
                     seed: int = 0) -> Path:
    """Write the corpus under ``out/corpus`` and prepare it into ``out/data`` (returned)."""
    splits = grammar_splits(n_train, n_dev, 0, seed)
    lang_dir = Path(out) / "corpus" / lang_dir_name("de")
    names = ["train"] + (["dev"] if n_dev else [])
    for name in names:
        write_split(lang_dir, name, splits[name], seed)
    return prepare(Path(out) / "corpus", Path(out) / "data", splits=tuple(names),
                   vocab_size_tgt=VOCAB_SIZE, vocab_size_src=VOCAB_SIZE, jobs=jobs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("out", type=Path, help="folder for corpus/ and data/")
    parser.add_argument("--train", type=int, default=400, help="training sentences")
    parser.add_argument("--dev", type=int, default=0, help="dev sentences (0: none)")
    parser.add_argument("--jobs", type=int, default=1, help="feature extraction processes")
    args = parser.parse_args(argv)
    if args.train < 1:
        parser.error(f"--train {args.train}: must be >= 1")
    print(make_tone_corpus(args.out, args.train, args.dev, args.jobs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
