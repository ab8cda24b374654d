"""The talk lists of a prepared split: each whole talk's wav and its reference sentences in time
order, with each sentence's start and length in the talk.

Layout (docs/architecture.md section 2; prepare_mustc.py writes it, ``data/mustc/talk_lists.py``)::

    $DATA/simuleval/<split>-talks/wav/<talk>.wav   the whole talk, 16 kHz mono
    $DATA/simuleval/<split>-talks/source.txt       wav/<talk>.wav, one talk per line
    $DATA/simuleval/<split>-talks/target.txt       the talk's reference sentences joined by spaces
    $DATA/simuleval/<split>-talks/sentences.yaml   {wav, offset, duration} per reference sentence
    $DATA/simuleval/<split>-talks/sentences.txt    its target sentence, line-aligned with the yaml

``source.txt`` and ``target.txt`` are what SimulEval streams (one instance per talk), so the
sweep runs on the folder as on any split. ``sentences.yaml`` and ``sentences.txt`` are what the
scorers need, in the format simulstream's own scorers read (``--audio-definition``,
``--reference``): talk by talk, each talk's sentences in time order. Offsets and durations are
seconds from the start of the talk's wav, as in MuST-C.

Why time order, sorted as numbers: a StreamLAAL sentence is scored against the words aligned to
it, and the alignment follows the order of the references; fairseq's MuST-C loader sorts a
talk's segments by the offset's *text* ("101.5" before "12.3"), which would put sentences out of
the order they are spoken.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from fairseq_mgcm.atomic_files import write_lines, write_text
from fairseq_mgcm.errors import BadValue, MissingFile

__all__ = ["SENTENCES_TEXT", "SENTENCES_YAML", "TALKS_SUFFIX", "Sentence", "Talk", "in_time_order",
           "read_talks", "talks_folder", "write_talk_lists"]

TALKS_SUFFIX = "-talks"
SENTENCES_YAML = "sentences.yaml"
SENTENCES_TEXT = "sentences.txt"


@dataclass(frozen=True)
class Sentence:
    """One reference sentence of a talk: its text, and where it is spoken (seconds)."""

    text: str
    offset: float
    duration: float

    @property
    def offset_ms(self) -> float:
        return self.offset * 1000.0

    @property
    def duration_ms(self) -> float:
        return self.duration * 1000.0


@dataclass(frozen=True)
class Talk:
    """A whole talk: its name (the wav's stem), its wav as listed in ``source.txt`` (relative to
    the talk folder) and its sentences in time order."""

    name: str
    wav: str
    sentences: tuple[Sentence, ...]

    @property
    def reference(self) -> str:
        """The talk's reference as one line (SimulEval's target of the talk)."""
        return " ".join(sentence.text for sentence in self.sentences)


def talks_folder(data_dir: Path, split: str) -> Path:
    """Where a prepared split's talk lists are: ``<data>/simuleval/<split>-talks``."""
    return Path(data_dir) / "simuleval" / f"{split}{TALKS_SUFFIX}"


def in_time_order(sentences: Iterable[Sentence]) -> tuple[Sentence, ...]:
    """``sentences`` sorted by their offset as a number (stable: equal offsets keep their order)."""
    return tuple(sorted(sentences, key=lambda sentence: sentence.offset))


def _yaml_entries(talks: Sequence[Talk]) -> str:
    """``sentences.yaml``: one flow mapping per line, as MuST-C's yaml."""
    lines = []
    for talk in talks:
        wav = Path(talk.wav).name
        for sentence in talk.sentences:
            entry = {"wav": wav, "offset": sentence.offset, "duration": sentence.duration}
            lines.append(yaml.safe_dump([entry], default_flow_style=None, sort_keys=False,
                                        width=2**31).rstrip("\n"))
    return "".join(line + "\n" for line in lines)


def write_talk_lists(folder: Path, talks: Sequence[Talk]) -> None:
    """Write the four lists of ``talks`` into ``folder`` (each atomically; the wavs are the
    caller's). The sentences must be in time order already."""
    for talk in talks:
        if talk.sentences != in_time_order(talk.sentences):
            raise ValueError(f"talk {talk.name}: sentences not in time order")
    write_text(folder / SENTENCES_YAML, _yaml_entries(talks))
    write_lines(folder / SENTENCES_TEXT, [s.text for talk in talks for s in talk.sentences])
    write_lines(folder / "target.txt", [talk.reference for talk in talks])
    write_lines(folder / "source.txt", [talk.wav for talk in talks])


def _lines(path: Path) -> list[str]:
    if not path.is_file():
        raise MissingFile(f"{path}: no such file (prepare the data again: prepare_mustc.py, "
                          f"scripts/run.sh --stage 1, writes the talk lists)")
    return path.read_text(encoding="utf-8").splitlines()


def _seconds(entry: dict, key: str, place: str) -> float:
    value = entry.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise BadValue(f"{place}: '{key}' must be a number of seconds, got {value!r}")
    if value < 0 or (key == "duration" and value == 0):
        raise BadValue(f"{place}: '{key}' {value} must be {'> 0' if key == 'duration' else '>= 0'}")
    return float(value)


def _sentences_by_talk(folder: Path) -> dict[str, list[Sentence]]:
    """``sentences.yaml`` with ``sentences.txt``, grouped by talk (the wav's stem)."""
    yaml_path, text_path = folder / SENTENCES_YAML, folder / SENTENCES_TEXT
    texts = _lines(text_path)
    entry_lines = _lines(yaml_path)
    if len(entry_lines) != len(texts):
        raise BadValue(f"{yaml_path} has {len(entry_lines)} lines but {text_path} has "
                       f"{len(texts)}; they must be line-aligned")
    by_talk: dict[str, list[Sentence]] = {}
    for line_no, (line, text) in enumerate(zip(entry_lines, texts), start=1):
        place = f"{yaml_path}:{line_no}"
        try:
            entries = yaml.safe_load(line)
        except yaml.YAMLError as error:
            raise BadValue(f"{place}: not a yaml entry ({error})") from None
        if not (isinstance(entries, list) and len(entries) == 1 and isinstance(entries[0], dict)
                and isinstance(entries[0].get("wav"), str)):
            raise BadValue(f"{place}: expected '- {{wav: ..., offset: ..., duration: ...}}'")
        entry = entries[0]
        sentence = Sentence(" ".join(text.split()), _seconds(entry, "offset", place),
                            _seconds(entry, "duration", place))
        by_talk.setdefault(Path(entry["wav"]).stem, []).append(sentence)
    return by_talk


def read_talks(folder: Path) -> list[Talk]:
    """The talks of a talk folder, in ``source.txt``'s order (SimulEval's instance order),
    each with its sentences in time order. Every listed talk must have sentences and every
    talk with sentences must be listed; errors name the file and line."""
    folder = Path(folder)
    sources = _lines(folder / "source.txt")
    by_talk = _sentences_by_talk(folder)
    talks: list[Talk] = []
    for line_no, wav in enumerate(sources, start=1):
        name = Path(wav).stem
        if any(talk.name == name for talk in talks):
            raise BadValue(f"{folder / 'source.txt'}:{line_no}: talk {name} is listed twice")
        if name not in by_talk:
            raise BadValue(f"{folder / 'source.txt'}:{line_no}: talk {name} has no sentence in "
                           f"{folder / SENTENCES_YAML}")
        talks.append(Talk(name, wav, in_time_order(by_talk.pop(name))))
    if by_talk:
        raise BadValue(f"{folder / SENTENCES_YAML}: talk {next(iter(by_talk))} is not listed in "
                       f"{folder / 'source.txt'}")
    if not talks:
        raise BadValue(f"{folder / 'source.txt'}: no talk listed")
    return talks
