"""Conflict telemetry: the one schema its writer and every reader share.

The writer aggregates the per-module records of every backward call over windows of
``interval`` updates and writes one JSON line per window::

    {"schema": 2, "method": "mgcm", "first_step": 0, "last_step": 99, "calls": 800,
     "columns": ["module", "kind", "pair", "n", "conflicts", "cos_mean", "cos_n"],
     "rows": [["encoder.layers.0.self_attn", "attention", "ctc", 800, 312, -0.0123, 800], ...]}

one row per (module, task pair) (rows, not objects: the key names would be 40% of the file),
and ``"run"``: the save dir of the training that wrote it, relative to the file's folder
(:func:`run_label`; a run folder moved whole keeps its telemetry). A training refuses a file that
another run wrote (it would drop that run's windows), or one that is not telemetry, when it
starts (:func:`check_telemetry_file`), not at its first checkpoint.
``n`` counts the backward calls (micro-batches) in which both tasks reached the module,
``conflicts`` those in which their gradients pointed apart, ``cos_mean`` is the mean of the
finite cosines (``cos_n`` of them; null when none). The size is bounded by the number of
windows, not the number of micro-batches: see ``docs/conflict.md`` for the arithmetic.

Readers (:func:`read_windows`) stream the file one line at a time.
"""
from __future__ import annotations

import atexit
import json
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from fairseq_mgcm.atomic_files import atomic_open
from fairseq_mgcm.conflict._stats import ConflictStats, ModuleConflict
from fairseq_mgcm.errors import UserError

SCHEMA = 2
COLUMNS = ("module", "kind", "pair", "n", "conflicts", "cos_mean", "cos_n")
DEFAULT_INTERVAL = 100
"""Updates per line: 100k updates give 1,000 lines, ~25 MB for the s-size model's partition
with two auxiliary tasks (tests/conflict/test_telemetry.py checks the bound)."""
KIND_ORDER = ("subsampler", "embedding", "attention", "ffn", "layernorm", "head", "layer",
              "model", "other")
"""The order in which readers list module kinds (the model's input side first)."""

__all__ = ["COLUMNS", "DEFAULT_INTERVAL", "FLAG", "KIND_ORDER", "SCHEMA", "ModuleTally",
           "TelemetryFileError", "TelemetryWriter", "Window", "check_telemetry_file", "pair_label",
           "read_windows", "run_label", "summarize"]
FLAG = "--conflict-telemetry-jsonl"


class TelemetryFileError(UserError, ValueError):
    """The telemetry path cannot be this run's file (a folder, not telemetry, another run's)."""


def run_label(save_dir: str | os.PathLike[str], path: str | os.PathLike[str]) -> str:
    """The run a telemetry file at ``path`` belongs to: the training's save dir, relative to the
    file's folder (``"checkpoints"`` for the recipe's ``<run>/conflict.jsonl``)."""
    return os.path.relpath(os.path.realpath(save_dir), os.path.dirname(os.path.realpath(path)))


def check_telemetry_file(path: str | os.PathLike[str], run: str | None) -> None:
    """Refuse, before any training, a ``path`` this run must not append to: a folder, a file
    with a line that is not telemetry, or the telemetry of another run than ``run`` (lines
    without a run, from before runs were recorded, are taken as this run's). A torn last line
    (no newline: a crash) is allowed; the writer drops it."""
    path = Path(path)
    if path.is_dir():
        raise TelemetryFileError(f"{FLAG} {path}: is a folder; give a file path")
    if path.exists() and not path.is_file():
        raise TelemetryFileError(f"{FLAG} {path}: is not a regular file")
    if not path.exists():
        if path.parent.exists() and not path.parent.is_dir():
            raise TelemetryFileError(f"{FLAG} {path}: {path.parent} is not a folder")
        return
    with open(path, encoding="utf-8", errors="replace") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip() or not line.endswith("\n"):
                continue
            try:
                entry = json.loads(line)
                if entry.get("schema") != SCHEMA or not isinstance(entry["last_step"], int):
                    raise ValueError(f"schema {entry.get('schema')!r}")
            except (ValueError, KeyError, TypeError, AttributeError):
                raise TelemetryFileError(
                    f"{FLAG} {path}:{number}: not a conflict telemetry line; the file is kept, "
                    f"give this run a new path") from None
            other = entry.get("run")
            if run is not None and other is not None and other != run:
                theirs = os.path.normpath(path.parent / other)
                ours = os.path.normpath(path.parent / run)
                raise TelemetryFileError(
                    f"{FLAG} {path}: holds the telemetry of another run (save dir {theirs}); "
                    f"give this run (save dir {ours}) a file of its own")


def pair_label(record: ModuleConflict, primary: str) -> str:
    """``"ctc"`` for the pair (primary, ctc); ``"ctc_asr"`` for a pair without the primary."""
    first, second = record.tasks
    return second if first == primary else f"{first}_{second}"


def summarize(stats: ConflictStats) -> dict[str, tuple[float, int]]:
    """``{name: (value, weight)}`` for fairseq's metrics: ``conflict_rate_<pair>_<kind>``
    (share of modules whose two gradients conflict), ``cosine_<pair>_<kind>`` (mean cosine
    over modules where it is finite), and ``conflict_rate_<pair>`` over all kinds. The weight
    is the number of modules averaged."""
    buckets: dict[tuple[str, str], list[ModuleConflict]] = {}
    for record in stats.records:
        pair = pair_label(record, stats.primary)
        buckets.setdefault((pair, record.kind), []).append(record)
        buckets.setdefault((pair, ""), []).append(record)
    summary: dict[str, tuple[float, int]] = {}
    for (pair, kind), records in buckets.items():
        suffix = f"{pair}_{kind}" if kind else pair
        summary[f"conflict_rate_{suffix}"] = (sum(r.conflict for r in records) / len(records),
                                              len(records))
        cosines = [r.cosine for r in records if math.isfinite(r.cosine)]
        if cosines and kind:
            summary[f"cosine_{suffix}"] = (sum(cosines) / len(cosines), len(cosines))
    return summary


@dataclass
class ModuleTally:
    """One (module, pair) over one window."""

    module: str
    kind: str
    pair: str
    n: int = 0
    conflicts: int = 0
    cos_sum: float = 0.0
    cos_n: int = 0

    @property
    def conflict_rate(self) -> float:
        return self.conflicts / self.n if self.n else math.nan

    @property
    def cos_mean(self) -> float:
        return self.cos_sum / self.cos_n if self.cos_n else math.nan

    def add(self, record: ModuleConflict) -> None:
        self.n += 1
        self.conflicts += bool(record.conflict)
        if math.isfinite(record.cosine):
            self.cos_sum += record.cosine
            self.cos_n += 1

    def to_row(self) -> list[Any]:
        mean = self.cos_mean
        return [self.module, self.kind, self.pair, self.n, self.conflicts,
                round(mean, 4) if math.isfinite(mean) else None, self.cos_n]

    @classmethod
    def from_row(cls, row: list[Any]) -> ModuleTally:
        """A row as the writer wrote it; anything else (a count as a string or a fraction, a
        mean that is not a number) raises ValueError, never turns into another number."""
        module, kind, pair, n, conflicts, mean, cos_n = row
        n, conflicts = _count(n, "n"), _count(conflicts, "conflicts")
        cos_n = _count(cos_n, "cos_n")
        if conflicts > n or cos_n > n:
            raise ValueError(f"row {row}: more conflicts or cosines than calls")
        if mean is not None and (isinstance(mean, bool) or not isinstance(mean, (int, float))):
            raise ValueError(f"cos_mean {mean!r} is not a number")
        return cls(str(module), str(kind), str(pair), n, conflicts,
                   float(mean) * cos_n if mean is not None else 0.0, cos_n)


def _count(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} {value!r} is not a count")
    return value


@dataclass
class Window:
    """The records of the updates ``first_step..last_step`` (one line of the file)."""

    method: str
    first_step: int
    last_step: int
    calls: int
    modules: list[ModuleTally]
    run: str | None = None  # the training that wrote it (run_label); None in older files

    def to_json_line(self) -> str:
        entry = {"schema": SCHEMA, "method": self.method, "first_step": self.first_step,
                 "last_step": self.last_step, "calls": self.calls, "columns": list(COLUMNS),
                 "rows": [m.to_row() for m in self.modules]}
        if self.run is not None:
            entry["run"] = self.run
        return json.dumps(entry, separators=(",", ":"))


class TelemetryWriter:
    """Aggregates :class:`ConflictStats` over windows of ``interval`` updates and appends one
    line per window, flushed. ``flush()`` writes the open window early (the optimizer calls it
    when a checkpoint is saved, so the file ends where the checkpoint does); ``close()``
    flushes and closes (also at interpreter exit).

    A resumed run continues the same file: before its first line it drops the lines of the
    updates it is about to redo (``last_step`` at or after its first step), which a crash after
    the last checkpoint may have left, and a torn last line. ``run`` (:func:`run_label`) is
    written in every line; a file another run wrote, or one that is not telemetry, is refused
    here, when the training starts (:class:`TelemetryFileError`)."""

    def __init__(self, path: str | os.PathLike[str], interval: int = DEFAULT_INTERVAL,
                 run: str | None = None) -> None:
        if interval < 1:
            raise ValueError(f"telemetry interval must be >= 1 update, got {interval}")
        check_telemetry_file(path, run)
        self.run = run
        self.path = os.fspath(path)
        self.interval = interval
        self._file: IO[str] | None = None
        self._window: Window | None = None
        self._tallies: dict[tuple[str, str], ModuleTally] = {}
        self._registered = False
        self._first_step: int | None = None

    def add(self, stats: ConflictStats, step: int) -> None:
        """Count one backward call of update ``step``."""
        if not stats.records:
            return
        if self._first_step is None:
            self._first_step = step
        if self._window is not None and step // self.interval != (
                self._window.first_step // self.interval):
            self.flush()
        if self._window is None:
            self._window = Window(stats.method, step, step, 0, [], self.run)
        window = self._window
        window.last_step = max(window.last_step, step)
        window.calls += 1
        for record in stats.records:
            pair = pair_label(record, stats.primary)
            tally = self._tallies.get((record.module, pair))
            if tally is None:
                tally = ModuleTally(record.module, record.kind, pair)
                self._tallies[(record.module, pair)] = tally
                window.modules.append(tally)
            tally.add(record)

    def flush(self) -> None:
        """Write the open window (if any) as one line."""
        if self._window is None:
            return
        line = self._window.to_json_line()
        self._window, self._tallies = None, {}
        if self._file is None:
            directory = os.path.dirname(self.path)
            if directory:
                os.makedirs(directory, exist_ok=True)
            if self._first_step is not None and os.path.exists(self.path):
                _drop_from(Path(self.path), self._first_step)
            self._file = open(self.path, "a", encoding="utf-8")
            if not self._registered:
                atexit.register(self.close)
                self._registered = True
        self._file.write(line + "\n")
        self._file.flush()

    def close(self) -> None:
        self.flush()
        if self._file is not None:
            self._file.close()
            self._file = None


def _drop_from(path: Path, step: int) -> None:
    """Rewrite ``path`` (atomically, streaming) without the windows that reach ``step``, and
    without a last line that a crash cut short (no newline: a full disk, a power cut)."""
    def keep(line: str) -> bool:
        return line.endswith("\n") and json.loads(line)["last_step"] < step

    with open(path, encoding="utf-8") as lines:
        if all(keep(line) for line in lines if line.strip()):
            return
    with open(path, encoding="utf-8") as lines, atomic_open(path) as out:
        for line in lines:
            if line.strip() and keep(line):
                out.write(line)


def read_windows(path: str | os.PathLike[str]) -> Iterator[Window]:
    """The windows of a telemetry file, one line at a time; a bad line raises ValueError
    naming ``file:line``."""
    with open(path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                if entry.get("schema") != SCHEMA:
                    raise ValueError(f"schema {entry.get('schema')!r}, expected {SCHEMA}")
                if tuple(entry["columns"]) != COLUMNS:
                    raise ValueError(f"columns {entry['columns']}, expected {list(COLUMNS)}")
                modules = [ModuleTally.from_row(row) for row in entry["rows"]]
                run = entry.get("run")
                yield Window(str(entry["method"]), _count(entry["first_step"], "first_step"),
                             _count(entry["last_step"], "last_step"),
                             _count(entry["calls"], "calls"), modules,
                             None if run is None else str(run))
            except (ValueError, KeyError, TypeError, AttributeError) as error:
                raise ValueError(f"{Path(path)}:{number}: not a conflict telemetry line "
                                 f"({error})") from None
