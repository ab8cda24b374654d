"""SentencePiece pieces become complete words, equal to SentencePiece's own detokenization."""
from __future__ import annotations

import random

import pytest
import sentencepiece as spm

from fairseq_mgcm.agents.words import WordAssembler


def test_word_emitted_only_when_complete() -> None:
    words = WordAssembler()
    assert words.push(["▁Gu", "ten"]) == []
    assert words.partial == "Guten"
    assert words.push(["▁Tag", ","]) == ["Guten"]
    assert words.push(["▁wie"]) == ["Tag,"]
    assert words.flush() == ["wie"]
    assert words.flush() == []


def test_bare_word_start_and_leading_continuation() -> None:
    words = WordAssembler()
    # A continuation piece at the very start is a word of its own; a lone "▁" is a space.
    assert words.push(["ab", "▁", ",", "▁x"]) == ["ab", ","]
    assert words.flush() == ["x"]


@pytest.fixture(scope="module")
def spm_model(tmp_path_factory: pytest.TempPathFactory) -> spm.SentencePieceProcessor:
    root = tmp_path_factory.mktemp("spm")
    text = root / "text.txt"
    rng = random.Random(0)
    vocab = ["Haus", "Katze", "läuft", "schnell", "über", "die", "Straße", "und", "der", "Hund"]
    text.write_text(
        "\n".join(" ".join(rng.choice(vocab) for _ in range(8)) + "." for _ in range(300))
    )
    spm.SentencePieceTrainer.train(
        input=str(text), model_prefix=str(root / "m"), vocab_size=30, model_type="unigram",
        minloglevel=2
    )
    return spm.SentencePieceProcessor(model_file=str(root / "m.model"))


def test_words_join_to_spm_decode(spm_model: spm.SentencePieceProcessor) -> None:
    rng = random.Random(1)
    for sentence in ["die Katze läuft, schnell!", "Hund  über Straße", "x", ""]:
        pieces = spm_model.encode(sentence, out_type=str)
        words = WordAssembler()
        out: list[str] = []
        i = 0
        while i < len(pieces):  # feed in random-size groups
            n = rng.randint(1, 3)
            out += words.push(pieces[i : i + n])
            i += n
        out += words.flush()
        assert " ".join(out) == spm_model.decode(pieces)
