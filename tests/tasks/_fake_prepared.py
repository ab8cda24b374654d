"""Throwaway prepared-data writer (architecture.md §2) until the data helper's fixture lands.

Each English word has a fixed random fbank pattern (a few frames plus noise); its German
"translation" is a fixed other word, so ST, ASR and CTC are all learnable by a tiny model.
"""

from __future__ import annotations

import io
import struct
import zipfile
from pathlib import Path

import numpy as np
import sentencepiece as spm
import yaml

EN = "the cat dog sees a big small red house tree runs walks".split()
DE = "die katze hund sieht ein gross klein rot haus baum rennt geht".split()


def _spm(texts: list[str], prefix: Path, vocab: int) -> None:
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(texts),
        model_prefix=str(prefix),
        vocab_size=vocab,
        model_type="unigram",
        character_coverage=1.0,
        bos_id=-1,
        eos_id=-1,
        unk_id=1,
        pad_id=-1,
        hard_vocab_limit=False,
    )
    pieces = [line.split("\t")[0] for line in open(f"{prefix}.vocab", encoding="utf-8")]
    with open(f"{prefix}.txt", "w", encoding="utf-8") as f:
        for piece in pieces:
            if piece not in ("<unk>", "<s>", "</s>", "<pad>"):
                f.write(f"{piece} 1\n")


def write_prepared(root: Path, n_train: int = 64, n_dev: int = 8, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    patterns = rng.normal(size=(len(EN), 80)).astype(np.float32) * 2
    splits = {"train": n_train, "dev": n_dev, "tst-COMMON": n_dev}
    rows: dict[str, list[tuple]] = {}
    feats: dict[str, np.ndarray] = {}
    for split, n in splits.items():
        rows[split] = []
        for i in range(n):
            words = rng.integers(0, len(EN), size=rng.integers(2, 6))
            frames = np.concatenate(
                [
                    np.repeat(patterns[w][None], 12, 0)
                    + rng.normal(size=(12, 80)).astype(np.float32) * 0.3
                    for w in words
                ]
            ).astype(np.float32)
            uid = f"{split}_{i}"
            feats[uid] = frames
            rows[split].append(
                (
                    uid,
                    frames.shape[0],
                    " ".join(EN[w] for w in words),
                    " ".join(DE[w] for w in words),
                )
            )
    root.mkdir(parents=True, exist_ok=True)
    zip_path = root / "fbank80.zip"
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_STORED) as zf:
        for uid, arr in feats.items():
            buf = io.BytesIO()
            np.save(buf, arr)
            zf.writestr(f"{uid}.npy", buf.getvalue())
    offsets = {}
    with zipfile.ZipFile(zip_path) as zf, open(zip_path, "rb") as f:
        for info in zf.infolist():
            f.seek(info.header_offset)
            name_len, extra_len = struct.unpack("<HH", f.read(30)[26:30])
            offsets[info.filename[:-4]] = (
                info.header_offset + 30 + name_len + extra_len,
                info.file_size,
            )
    for split, items in rows.items():
        with open(root / f"{split}.tsv", "w", encoding="utf-8") as f:
            f.write("id\taudio\tn_frames\tsrc_text\ttgt_text\tspeaker\n")
            for uid, n, en, de in items:
                off, size = offsets[uid]
                f.write(f"{uid}\tfbank80.zip:{off}:{size}\t{n}\t{en}\t{de}\tspk\n")
    train = rows["train"]
    _spm([r[2] for r in train], root / "spm_src", 30)
    _spm([r[3] for r in train], root / "spm_tgt", 30)
    all_train = np.concatenate([feats[r[0]] for r in train])
    np.savez(root / "gcmvn.npz", mean=all_train.mean(0), std=all_train.std(0))
    config = {
        "input_channels": 1,
        "input_feat_per_channel": 80,
        "vocab_filename": "spm_tgt.txt",
        "bpe_tokenizer": {"bpe": "sentencepiece", "sentencepiece_model": "spm_tgt.model"},
        "src_vocab_filename": "spm_src.txt",
        "src_bpe_tokenizer": {"bpe": "sentencepiece", "sentencepiece_model": "spm_src.model"},
        "global_cmvn": {"stats_npz_path": "gcmvn.npz"},
        "transforms": {"*": ["global_cmvn"]},
    }
    (root / "config.yaml").write_text(yaml.safe_dump(config))
    return root


if __name__ == "__main__":
    import sys

    write_prepared(Path(sys.argv[1]))
