"""Done markers: the one helper that lets every resumable step skip work it has done before.

A step writes its outputs (atomically), then a marker file recording *what produced them*:
a command line or flag list (a string), or a signature of inputs and settings (a dict, stored
as JSON). A re-run skips the step only when the marker records exactly the same thing and
every output still exists, so changed settings or inputs redo it, and a crash between the
outputs and the marker redoes it too. Used by scripts/run.sh (through the command line below),
by MuST-C preparation (``fairseq_mgcm.data.mustc.stages``) and by the SimulEval sweep.

Plain Python with no fairseq import: run.sh calls it once per stage.

Usage (exit status 0 = yes / done, 1 = no; ``RECORD`` is the exact text to record)::

    python -m fairseq_mgcm.markers is-done MARKER RECORD [--outputs PATH...] [--inputs PATH...]
    python -m fairseq_mgcm.markers mark-done MARKER RECORD
    python -m fairseq_mgcm.markers up-to-date OUTPUT [INPUT...]
    python -m fairseq_mgcm.markers clear MARKER
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

from fairseq_mgcm.atomic_files import write_text

__all__ = ["Record", "clear", "file_signature", "is_done", "mark_done", "newer_inputs",
           "read_record", "stale_reason", "texts_signature", "up_to_date"]

Record = str | Mapping[str, object]
"""What produced a step's outputs: text (kept verbatim) or a JSON-able mapping."""


def read_record(marker: Path) -> str | None:
    """The marker's text, or None when it is absent or unreadable (a marker from another
    version reads as "not done", never as an error)."""
    try:
        return Path(marker).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def stale_reason(marker: Path, record: Record, outputs: Iterable[Path] = ()) -> str | None:
    """None when ``marker`` records exactly ``record`` and every output exists; otherwise why
    the step must run (for the log)."""
    missing = [str(p) for p in outputs if not Path(p).exists()]
    text = read_record(marker)
    if text is None:
        return "not done before" if not Path(marker).exists() else f"{marker} is unreadable"
    if isinstance(record, str):
        if text != record:
            return "settings changed"
    else:
        try:
            recorded = json.loads(text)
        except ValueError:
            recorded = None
        if not isinstance(recorded, dict):
            return f"{marker} does not hold a JSON record"
        wanted = json.loads(json.dumps(record))  # tuples become lists, as in the file
        changed = sorted(k for k in wanted.keys() | recorded.keys()
                         if wanted.get(k) != recorded.get(k))
        if changed:
            return "changed: " + ", ".join(changed)
    if missing:
        return "output missing: " + ", ".join(missing)
    return None


def is_done(marker: Path, record: Record, outputs: Iterable[Path] = ()) -> bool:
    """True when the step that ``marker`` guards need not run again."""
    return stale_reason(marker, record, outputs) is None


def mark_done(marker: Path, record: Record) -> None:
    """Record ``record`` in ``marker`` atomically (after the outputs are in place); a marker
    that already records it is left as it is, so a re-run that redid nothing rewrites nothing."""
    text = record if isinstance(record, str) else json.dumps(record, sort_keys=True, indent=1)
    write_text(Path(marker), text, if_changed=True)


def clear(marker: Path) -> None:
    """Forget a step before redoing it, so a crash midway cannot leave a stale marker."""
    Path(marker).unlink(missing_ok=True)


def newer_inputs(output: Path, inputs: Iterable[Path]) -> list[Path] | None:
    """The inputs modified after ``output``; None when ``output`` does not exist."""
    try:
        made = Path(output).stat().st_mtime_ns
    except OSError:
        return None
    newer = []
    for p in inputs:
        try:
            if Path(p).stat().st_mtime_ns > made:
                newer.append(Path(p))
        except OSError:  # an input that is gone is not newer (as the shell's -nt)
            continue
    return newer


def up_to_date(output: Path, inputs: Iterable[Path]) -> bool:
    """``output`` exists and no input is newer (for cheap steps derived from files)."""
    newer = newer_inputs(output, inputs)
    return newer is not None and not newer


def file_signature(paths: Iterable[Path], hash_contents: Iterable[Path] = ()) -> dict[str, object]:
    """Sizes and mtimes of ``paths``; a sha256 of the files in ``hash_contents`` (those whose
    edits must count even when size and mtime stay the same: texts, yaml).

    The MuST-C train texts and yaml (~80 MB) hash in well under a second.
    """
    sig: dict[str, object] = {}
    for p in paths:
        stat = Path(p).stat()
        sig[str(p)] = [stat.st_size, stat.st_mtime_ns]
    for p in hash_contents:
        sig[f"sha256:{p}"] = hashlib.sha256(Path(p).read_bytes()).hexdigest()
    return sig


def texts_signature(texts: Iterable[str]) -> str:
    """One sha256 over many strings (a vocabulary's training texts, segment ids)."""
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode("utf-8") + b"\n")
    return digest.hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fairseq_mgcm.markers",
                                     description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    done = commands.add_parser("is-done", help="exit 0 when MARKER records RECORD")
    done.add_argument("marker", type=Path)
    done.add_argument("record")
    done.add_argument("--outputs", type=Path, nargs="*", default=[])
    done.add_argument("--inputs", type=Path, nargs="*", default=[],
                      help="and none of these is newer than MARKER")
    mark = commands.add_parser("mark-done", help="record RECORD in MARKER")
    mark.add_argument("marker", type=Path)
    mark.add_argument("record")
    fresh = commands.add_parser("up-to-date", help="exit 0 when OUTPUT exists, no INPUT newer")
    fresh.add_argument("output", type=Path)
    fresh.add_argument("inputs", type=Path, nargs="*")
    forget = commands.add_parser("clear", help="remove MARKER")
    forget.add_argument("marker", type=Path)
    args = parser.parse_args(argv)
    if args.command == "is-done":
        done_before = is_done(args.marker, args.record, args.outputs)
        return 0 if done_before and up_to_date(args.marker, args.inputs) else 1
    if args.command == "mark-done":
        mark_done(args.marker, args.record)
    elif args.command == "up-to-date":
        return 0 if up_to_date(args.output, args.inputs) else 1
    else:
        clear(args.marker)
    return 0


if __name__ == "__main__":
    sys.exit(main())
