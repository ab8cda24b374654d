"""Read a run's translations back, sentence by sentence, for paired significance tests.

Corpus BLEU alone cannot tell a real gain from noise; sacrebleu's paired tests need each
system's hypothesis for every test sentence, in the same order, with the references. The
recipe leaves them in two places:

- offline decoding: fairseq-generate's output (``generate-<split>.txt``), where ``D-<id>`` is the
  detokenized hypothesis and ``T-<id>`` the reference of dataset item ``id``;
- simultaneous decoding: each SimulEval run's ``instances.log`` (one JSON object a line, with
  ``index``, ``prediction`` and ``reference``).

Both are keyed by the test set's item index, so two runs on the same split pair up exactly.
A file that is not whole (no final BLEU line, a torn JSON line, an item twice) raises
:class:`~fairseq_mgcm.recipe.result_files.ResultFileError` naming ``file:line``.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from fairseq_mgcm.recipe.result_files import (
    ResultFileError,
    match_bleu_line,
    number,
    numbered_lines,
)

__all__ = ["Translations", "read_generate", "read_instances"]


@dataclass(frozen=True)
class Translations:
    """Hypotheses and references of one decoding of one run, keyed by test item index."""

    source: Path  # the file they were read from, for messages
    hypotheses: dict[int, str]
    references: dict[int, str]

    def __len__(self) -> int:
        return len(self.hypotheses)


def read_generate(path: Path) -> Translations:
    """``D-``/``T-`` lines of a fairseq-generate output file, which must end with its BLEU line
    (fairseq prints it last: a file without it was cut short)."""
    hyps: dict[int, str] = {}
    refs: dict[int, str] = {}
    last, line_no = "", 0
    for line_no, line in numbered_lines(path):
        last = line
        tag, _, rest = line.rstrip("\n").partition("\t")
        if tag.startswith("D-"):
            score, tab, text = rest.partition("\t")  # D-<id> <score> <text>
            if not tab:
                raise ResultFileError(f"{path}:{line_no}: expected 'D-<id>', a score and a "
                                      f"hypothesis, separated by tabs")
            number(score, f"{path}:{line_no}", "score")
            _put(hyps, _index(tag, path, line_no), text, path, line_no)
        elif tag.startswith("T-"):
            _put(refs, _index(tag, path, line_no), rest, path, line_no)
    if not hyps:
        raise ResultFileError(f"{path}: no 'D-<id>' hypothesis lines (not a fairseq-generate "
                              f"output?)")
    if not last.endswith("\n"):
        raise ResultFileError(f"{path}:{line_no}: the last line has no newline: cut short")
    match_bleu_line(last, f"{path}:{line_no}")
    missing = sorted(set(hyps) - set(refs))
    if missing:
        raise ResultFileError(f"{path}: hypotheses without a 'T-' reference, e.g. item "
                              f"{missing[0]}")
    return Translations(path, hyps, {i: refs[i] for i in hyps})


def _put(table: dict[int, str], index: int, text: str, path: Path, line_no: int) -> None:
    if index in table:
        raise ResultFileError(f"{path}:{line_no}: item {index} appears twice")
    table[index] = text


def read_instances(path: Path) -> Translations:
    """``prediction``/``reference`` of every instance in a SimulEval ``instances.log``."""
    hyps: dict[int, str] = {}
    refs: dict[int, str] = {}
    for line_no, line in numbered_lines(path):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            index = record.get("index", len(hyps))
            prediction, reference = record["prediction"], record["reference"]
            if isinstance(index, bool) or not isinstance(index, int) or index < 0:
                raise ValueError(f"index {index!r} is not a non-negative integer")
            if not isinstance(prediction, str) or not isinstance(reference, str):
                raise ValueError("prediction and reference must be strings")
        except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as err:
            raise ResultFileError(f"{path}:{line_no}: not a SimulEval instance ({err})"
                                  ) from None
        _put(hyps, index, prediction, path, line_no)
        refs[index] = reference
    if not hyps:
        raise ResultFileError(f"{path}: no instances")
    return Translations(path, hyps, refs)


def _index(tag: str, path: Path, line_no: int) -> int:
    if not re.fullmatch(r"[0-9]+", tag[2:]):
        raise ResultFileError(f"{path}:{line_no}: bad item id in {tag!r}")
    return int(tag[2:])
