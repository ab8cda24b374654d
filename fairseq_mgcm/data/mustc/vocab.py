"""SentencePiece models and the matching fairseq dictionaries.

The special-symbol ids follow fairseq's own convention (bos 0, pad 1, eos 2, unk 3), and the
dictionary file lists only the real pieces (``piece 1`` per line): fairseq's ``Dictionary``
adds <s>, <pad>, </s> and <unk> itself.
"""
import io
from pathlib import Path

import sentencepiece as spm

from fairseq_mgcm.atomic_files import atomic_path, write_lines

_SPECIAL_IDS = {"bos_id": 0, "pad_id": 1, "eos_id": 2, "unk_id": 3}


def train_sentencepiece(texts: list[str], model_prefix: Path, vocab_size: int,
                        model_type: str = "unigram") -> None:
    """Train ``<prefix>.model`` and write ``<prefix>.txt`` (the fairseq dictionary).

    ``vocab_size`` is an upper bound: a small corpus gets as many pieces as it supports
    (``hard_vocab_limit=False``) instead of an error. The texts go in and the model comes out in
    memory: a model trained from a file records that file's path (and the model prefix) in its
    trainer spec, so the same texts would give different bytes in another folder or run.
    """
    model_prefix = Path(model_prefix)
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(texts), model_writer=model, vocab_size=vocab_size,
        model_type=model_type, character_coverage=1.0, hard_vocab_limit=False,
        input_sentence_size=2_000_000, shuffle_input_sentence=True,
        num_threads=1, minloglevel=2, **_SPECIAL_IDS,
    )
    processor = spm.SentencePieceProcessor(model_proto=model.getvalue())
    pieces = [processor.id_to_piece(i) for i in range(len(_SPECIAL_IDS),
                                                       processor.get_piece_size())]
    write_lines(model_prefix.with_suffix(".txt"), [f"{p} 1" for p in pieces])
    with atomic_path(Path(str(model_prefix) + ".model")) as model_path:
        model_path.write_bytes(model.getvalue())
