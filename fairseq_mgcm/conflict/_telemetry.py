"""Conflict telemetry: summary scalars per (task pair, module kind), and a JSON-lines record."""
from __future__ import annotations

import json
import math
import os
from typing import IO

from fairseq_mgcm.conflict._stats import ConflictStats, ModuleConflict


def pair_label(record: ModuleConflict, primary: str) -> str:
    """``"ctc"`` for the pair (primary, ctc); ``"ctc_asr"`` for a pair without the primary."""
    first, second = record.tasks
    return second if first == primary else f"{first}_{second}"


def summarize(stats: ConflictStats) -> dict[str, tuple[float, int]]:
    """``{name: (value, weight)}``: ``conflict_rate_<pair>_<kind>`` (share of modules whose two
    gradients conflict), ``cosine_<pair>_<kind>`` (mean cosine over modules where it is finite),
    and ``conflict_rate_<pair>`` over all kinds. The weight is the number of modules averaged."""
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


def to_json_line(stats: ConflictStats, step: int | None) -> str:
    """One JSON object: ``{"step", "method", "records": [{"module", "kind", "pair", "cos",
    "conflict"}, ...]}``; a NaN cosine is written as null."""
    records = [
        {
            "module": r.module,
            "kind": r.kind,
            "pair": pair_label(r, stats.primary),
            "cos": round(r.cosine, 5) if math.isfinite(r.cosine) else None,
            "conflict": r.conflict,
        }
        for r in stats.records
    ]
    return json.dumps({"step": step, "method": stats.method, "records": records})


class JsonlWriter:
    """Appends one line per call and flushes it, so a crash loses at most the line being written
    and a resumed run continues the same file."""

    def __init__(self, path: str | os.PathLike) -> None:
        self._path = os.fspath(path)
        self._file: IO[str] | None = None

    def write(self, line: str) -> None:
        if self._file is None:
            directory = os.path.dirname(self._path)
            if directory:
                os.makedirs(directory, exist_ok=True)
            self._file = open(self._path, "a", encoding="utf-8")
        self._file.write(line + "\n")
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
