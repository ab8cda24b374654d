"""The streams a long-form SimulEval run wrote: per talk, its words and when each was written.

SimulEval's ``instances.log`` has one JSON object per instance (here: per talk) with the
``prediction`` (words joined by spaces), ``delays`` (for each word, the ms of source audio read
when it was written) and ``elapsed`` (the same plus the wall-clock time the run had spent on the
talk so far: the computation-aware delay). Read here without SimulEval, so that scoring and
reports need only the log.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from fairseq_mgcm.errors import BadValue, MissingFile

__all__ = ["Stream", "read_streams"]


@dataclass(frozen=True)
class Stream:
    """One talk's output: its words and, for each word, its delay and computation-aware delay
    (ms from the start of the talk)."""

    words: tuple[str, ...]
    delays: tuple[float, ...]
    elapsed: tuple[float, ...]

    def __post_init__(self) -> None:
        if not len(self.words) == len(self.delays) == len(self.elapsed):
            raise ValueError(f"{len(self.words)} words, {len(self.delays)} delays and "
                             f"{len(self.elapsed)} elapsed times: one of each per word")


def _times(record: dict, key: str, place: str) -> tuple[float, ...]:
    values = record.get(key)
    if not isinstance(values, list) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            for v in values):
        raise BadValue(f"{place}: '{key}' is not a list of numbers")
    return tuple(float(v) for v in values)


def read_streams(log: Path) -> list[Stream]:
    """The talks' streams, by SimulEval's instance index (0, 1, ...: ``source.txt``'s order)."""
    log = Path(log)
    if not log.is_file():
        raise MissingFile(f"{log}: no SimulEval instances log")
    by_index: dict[int, Stream] = {}
    with open(log, encoding="utf-8") as f:
        for line_no, line in enumerate(f, start=1):
            if not line.strip():
                continue
            place = f"{log}:{line_no}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise BadValue(f"{place}: not JSON ({error.msg}; cut short?)") from None
            index, prediction = record.get("index"), record.get("prediction")
            if not isinstance(index, int) or not isinstance(prediction, str):
                raise BadValue(f"{place}: not a SimulEval instance (no index or prediction)")
            words = tuple(prediction.split())
            delays, elapsed = _times(record, "delays", place), _times(record, "elapsed", place)
            if not len(words) == len(delays) == len(elapsed):
                raise BadValue(f"{place}: {len(words)} words but {len(delays)} delays and "
                               f"{len(elapsed)} elapsed times")
            if index in by_index:
                raise BadValue(f"{place}: instance {index} logged twice")
            by_index[index] = Stream(words, delays, elapsed)
    if not by_index:
        raise BadValue(f"{log}: empty, the SimulEval run wrote no instance")
    if sorted(by_index) != list(range(len(by_index))):
        raise BadValue(f"{log}: instances {sorted(by_index)}: expected 0..{len(by_index) - 1}")
    return [by_index[i] for i in range(len(by_index))]
