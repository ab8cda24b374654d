"""Read a run's translations back, sentence by sentence, for paired significance tests.

Corpus BLEU alone cannot tell a real gain from noise; sacrebleu's paired tests need each
system's hypothesis for every test sentence, in the same order, with the references. The
recipe leaves them in two places:

- offline decoding: fairseq-generate's output (``generate-<split>.txt``), where ``D-<id>`` is the
  detokenized hypothesis and ``T-<id>`` the reference of dataset item ``id``;
- simultaneous decoding: each SimulEval run's ``instances.log`` (one JSON object a line, with
  ``index``, ``prediction`` and ``reference``).

Both are keyed by the test set's item index, so two runs on the same split pair up exactly.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

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
    """``D-``/``T-`` lines of a fairseq-generate output file."""
    hyps: dict[int, str] = {}
    refs: dict[int, str] = {}
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            tag, _, rest = line.rstrip("\n").partition("\t")
            if tag.startswith("D-"):
                _, _, text = rest.partition("\t")  # D-<id> <score> <text>
                hyps[_index(tag, path, line_no)] = text
            elif tag.startswith("T-"):
                refs[_index(tag, path, line_no)] = rest
    if not hyps:
        raise ValueError(f"{path}: no 'D-<id>' hypothesis lines (not a fairseq-generate output?)")
    missing = sorted(set(hyps) - set(refs))
    if missing:
        raise ValueError(f"{path}: hypotheses without a 'T-' reference, e.g. item {missing[0]}")
    return Translations(path, hyps, {i: refs[i] for i in hyps})


def read_instances(path: Path) -> Translations:
    """``prediction``/``reference`` of every instance in a SimulEval ``instances.log``."""
    hyps: dict[int, str] = {}
    refs: dict[int, str] = {}
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                index = int(record.get("index", len(hyps)))
                hyps[index], refs[index] = record["prediction"], record["reference"]
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
                raise ValueError(f"{path}:{line_no}: not a SimulEval instance ({err})") from err
    if not hyps:
        raise ValueError(f"{path}: no instances")
    return Translations(path, hyps, refs)


def _index(tag: str, path: Path, line_no: int) -> int:
    try:
        return int(tag[2:])
    except ValueError:
        raise ValueError(f"{path}:{line_no}: bad item id in {tag!r}") from None
