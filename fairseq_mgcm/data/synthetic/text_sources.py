"""Where the corpus maker's sentences come from: the built-in grammar or a parallel text pair.

Both sources return ``{split: [(english, german), ...]}``. Held-out splits never repeat a
training sentence: the grammar deduplicates by construction, and text files are deduplicated
before they are split.
"""
import gzip
import random
import zlib
from pathlib import Path
from typing import BinaryIO, cast

from fairseq_mgcm.data.errors import CorpusError, where
from fairseq_mgcm.data.synthetic.grammar import generate_pairs

SPLITS = ("train", "dev", "tst-COMMON")


def grammar_splits(n_train: int, n_dev: int, n_test: int, seed: int) -> dict[str, list]:
    """Distinct grammar sentences: the first ``n_dev`` go to dev, the next to tst-COMMON."""
    pairs = generate_pairs(n_train + n_dev + n_test, seed=seed)
    return {"dev": pairs[:n_dev], "tst-COMMON": pairs[n_dev:n_dev + n_test],
            "train": pairs[n_dev + n_test:]}


def _open_text(path: Path) -> BinaryIO:
    if not path.is_file():
        raise CorpusError(f"{path}: text file not found")
    # Bytes, decoded line by line below, so that a decode error can name its line.
    return cast(BinaryIO, gzip.open(path, "rb")) if path.suffix == ".gz" else open(path, "rb")


def _decode(raw: bytes, path: Path, line_no: int) -> str:
    try:
        return raw.decode("utf-8-sig" if line_no == 1 else "utf-8")  # no byte order mark
    except UnicodeDecodeError as e:
        raise CorpusError(f"{where(path, line_no)}: not UTF-8 (byte {raw[e.start]:#04x}: "
                          f"{e.reason}); convert the file with iconv") from e


def _read_lines(path: Path, max_lines: int | None) -> tuple[list[str], int]:
    """The first ``max_lines`` lines (all without it), checked, and the file's whole line
    count: the lines past ``max_lines`` are counted, not decoded, so a line missing anywhere
    in a large file is still seen by the caller's count comparison."""
    lines = []
    count = 0
    try:
        with _open_text(path) as f:
            for count, raw in enumerate(f, start=1):
                if max_lines is not None and count > max_lines:
                    continue
                # split() also removes tabs and line breaks, which the TSVs cannot hold
                text = " ".join(_decode(raw, path, count).split())
                if not text:
                    raise CorpusError(f"{where(path, count)}: empty text line")
                lines.append(text)
    except (OSError, EOFError, zlib.error) as e:
        raise CorpusError(f"{path}: cannot read text ({e})") from e
    return lines, count


def read_parallel_text(src: Path, tgt: Path, max_sentences: int | None = None) -> list:
    """Line-aligned (source, target) pairs from two text files (``.gz`` allowed): the first
    ``max_sentences`` of them, but only once both files, read whole, have as many lines.

    Comparing only the lines used would pass a target file with one line missing early on:
    every later pair would be shifted by one, silently. Only the counts are known, so a
    mismatch names the range the missing or extra line lies in, not a guessed line.
    """
    src_lines, n_src = _read_lines(src, max_sentences)
    tgt_lines, n_tgt = _read_lines(tgt, max_sentences)
    if n_src != n_tgt:
        raise CorpusError(
            f"{src} has {n_src} lines, {tgt} has {n_tgt}; they must be line-aligned (a line "
            f"is missing or extra somewhere in lines 1-{min(n_src, n_tgt) + 1})"
        )
    if not src_lines:
        raise CorpusError(f"{src}: no text lines")
    return list(zip(src_lines, tgt_lines))


def text_splits(
    pairs: list, split: str, n_dev: int, n_test: int, seed: int
) -> dict[str, list]:
    """Assign text pairs to splits.

    ``split="all"``: deduplicate, shuffle with ``seed``, then ``n_dev`` to dev, ``n_test`` to
    tst-COMMON and the rest to train. Any other value puts every pair, in file order, into that
    one split (e.g. Multi30k's own val file as dev).
    """
    if split != "all":
        if split not in SPLITS:
            raise CorpusError(f"--split must be 'all' or one of {', '.join(SPLITS)}, not {split!r}")
        return {split: list(pairs)}
    seen_src: set[str] = set()
    seen_tgt: set[str] = set()
    unique = []
    for src, tgt in pairs:
        if src not in seen_src and tgt not in seen_tgt:
            seen_src.add(src)
            seen_tgt.add(tgt)
            unique.append((src, tgt))
    random.Random(seed).shuffle(unique)
    if n_dev + n_test >= len(unique):
        raise CorpusError(
            f"only {len(unique)} distinct sentence pairs; cannot hold out {n_dev} dev and "
            f"{n_test} test pairs and keep any for training (lower --n-dev/--n-test)"
        )
    return {"dev": unique[:n_dev], "tst-COMMON": unique[n_dev:n_dev + n_test],
            "train": unique[n_dev + n_test:]}
