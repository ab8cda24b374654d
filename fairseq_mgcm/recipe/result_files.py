"""Strict readers of the numbers a run leaves behind, for the results table and the plots.

A results file cut short (a full disk, a copy interrupted, an edit) must not turn into a
smaller number: ``BLEU = 49.0x`` is not 49.0, and a table row that lost its last columns is not
a row with "-" in them. Every number here is parsed whole (:func:`number`), every table row
must have the header's fields, and a file that should end with a newline must; anything else
raises :class:`ResultFileError` naming ``file:line``, and the report writes nothing.
"""
from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from fairseq_mgcm.agents.policies import POLICIES

__all__ = ["ResultFileError", "SimulTable", "number", "numbered_lines", "read_offline_bleu",
           "read_simul_table", "read_sweep_table", "read_train_peak", "match_bleu_line"]

_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|[+-]?(?:nan|inf)")
# fairseq-generate's last line, with --scoring sacrebleu ("BLEU = 40.48 71.2/47.5/33.1/24.0
# (BP = 1.000 ratio = ...)") or bleu ("BLEU4 = 40.48, 71.2/47.5/33.1/24.0 (BP=1.000, ...)").
_BLEU_LINE = re.compile(r"Generate \S+ with beam=\d+: BLEU\S* = (?P<bleu>\S+?),? "
                        r"\d+(?:\.\d+)?(?:/\d+(?:\.\d+)?)* \([^()]*\)")
SIMUL_REQUIRED = ("k", "BLEU")
SIMUL_TEXT_COLUMNS = ("policy", "output")
PEAK_KEYS = ("peak_rss_mb", "wall_s", "cpu_s")


class ResultFileError(ValueError):
    """A result file that cannot be read as written by the recipe; the message names
    ``file:line``."""


def number(text: str, place: str, what: str = "value") -> float:
    """``text`` as a float, or ResultFileError at ``place`` unless all of it is a number
    (``nan`` and ``inf`` included: the sweep writes them for unscored latencies)."""
    if not _NUMBER.fullmatch(text):
        raise ResultFileError(f"{place}: {what} {text!r} is not a number (a torn or edited "
                              f"file?)")
    return float(text)


def numbered_lines(path: Path) -> Iterator[tuple[int, str]]:
    """``(line number, line)`` of a UTF-8 text file; a line that is not UTF-8 is an error
    naming it."""
    with open(path, "rb") as f:
        for line_no, raw in enumerate(f, 1):
            try:
                yield line_no, raw.decode("utf-8")
            except UnicodeDecodeError as error:
                raise ResultFileError(f"{path}:{line_no}: not UTF-8 ({error.reason})") from None


def _text(path: Path) -> str:
    return "".join(line for _, line in numbered_lines(path))


def match_bleu_line(line: str, place: str) -> float:
    """The corpus BLEU of fairseq-generate's ``Generate ... with beam=N: BLEU = ...`` line."""
    match = _BLEU_LINE.fullmatch(line.rstrip("\n"))
    if not match:
        raise ResultFileError(f"{place}: not fairseq-generate's 'Generate <split> with beam=N: "
                              f"BLEU = ... (BP ...)' line (cut short?): {line.rstrip()[:80]!r}")
    bleu = number(match["bleu"], place, "BLEU")
    if not 0 <= bleu <= 100:
        raise ResultFileError(f"{place}: BLEU {bleu} is outside 0-100")
    return bleu


def read_offline_bleu(path: Path) -> float | None:
    """The BLEU in ``offline_bleu.txt`` (the last line of fairseq-generate's output), None when
    the file is not there."""
    if not path.exists():
        return None
    lines = _text(path).splitlines(keepends=True)
    if len(lines) != 1 or not lines[0].endswith("\n"):
        raise ResultFileError(f"{path}:{max(len(lines), 1)}: expected one line ending in a "
                              f"newline, found {len(lines)} line(s){_unended(lines)}")
    return match_bleu_line(lines[0], f"{path}:1")


def _unended(lines: list[str]) -> str:
    return ", the last one cut short" if lines and not lines[-1].endswith("\n") else ""


@dataclass
class SimulTable:
    """A sweep table, row by row: the numbers by column (``value`` always among them), the
    policy (``waitk`` in a table from before the sweep had policies) and the ``output`` folder
    ("" when the table has no such column)."""

    rows: list[dict[str, float]]
    policies: list[str]
    outputs: list[str]


def read_sweep_table(path: Path) -> SimulTable:
    """The sweep's ``results.tsv``. A table without ``policy``/``value`` columns (the sweep
    before ``--policy``) is wait-k throughout with ``value`` = ``k``; a policy the agent does
    not have is an error naming the row."""
    text = _text(path)
    if not text.endswith("\n"):
        raise ResultFileError(f"{path}:{text.count(chr(10)) + 1}: "
                              + ("empty file, not a sweep table" if not text else
                                 "the last row has no newline: the table was cut short"))
    reader = csv.reader(text.splitlines(), delimiter="\t")
    header = next(reader)
    missing = [c for c in SIMUL_REQUIRED if c not in header]
    if missing:
        raise ResultFileError(f"{path}:1: no column {', '.join(missing)} (header: "
                              f"{' '.join(header)}); not a simuleval_sweep table?")
    table = SimulTable([], [], [])
    for fields in reader:
        place = f"{path}:{reader.line_num}"
        if len(fields) != len(header):
            raise ResultFileError(f"{place}: {len(fields)} fields, expected {len(header)} "
                                  f"({' '.join(header)}); a torn or edited row?")
        record = dict(zip(header, fields))
        policy = record.get("policy", "waitk")
        if policy not in POLICIES:
            raise ResultFileError(f"{place}: policy {policy!r} is not one of "
                                  f"{', '.join(POLICIES)}; an edited row?")
        row = {name: number(value, place, name) for name, value in record.items()
               if name not in SIMUL_TEXT_COLUMNS}
        if "value" not in row:
            if policy != "waitk":
                raise ResultFileError(f"{place}: policy {policy} needs a value column (header: "
                                      f"{' '.join(header)})")
            row["value"] = row["k"]
        table.rows.append(row)
        table.policies.append(policy)
        table.outputs.append(record.get("output", ""))
    return table


def read_simul_table(path: Path) -> tuple[list[dict[str, float]], list[str]]:
    """:func:`read_sweep_table`'s numbers and ``output`` fields, for a reader of wait-k tables
    (the long-form stage's)."""
    table = read_sweep_table(path)
    return table.rows, table.outputs


def read_train_peak(path: Path) -> dict[str, float]:
    """``train_peak.json``'s totals (those present) as numbers."""
    try:
        record = json.loads(_text(path))
    except json.JSONDecodeError as error:
        raise ResultFileError(f"{path}:{error.lineno}: not JSON ({error.msg}; cut short?)"
                              ) from None
    if not isinstance(record, dict):
        raise ResultFileError(f"{path}:1: expected a JSON object")
    values: dict[str, float] = {}
    for key in PEAK_KEYS:
        if key not in record:
            continue
        value = record[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(
                value):
            raise ResultFileError(f"{path}: {key} {value!r} is not a finite number")
        values[key] = float(value)
    return values
