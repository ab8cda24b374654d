"""Check SimulEval's source list before the agent translates any of it.

SimulEval reads each wav only when it reaches it, inside its own loop: a missing, 0-byte or
non-audio file stops the evaluation there with soundfile's traceback, naming neither the list
nor its line, after every earlier instance was translated. The agent checks the list's wavs
(headers only, through ``soundfile.info``) when it is built, and the first bad one stops the
run at once with ``<wav>: <reason> (<source list>:<line>)``. A wav with no samples is not an
error: silence is translated to nothing (tests/agents/test_simuleval_cli.py); but a list of
nothing else gives a run without a word, on which SimulEval 1.1.4's own scorer fails
(``StatisticsError``), so the agent refuses that unless ``--no-scoring`` is given (the sweep's
way: it scores the log itself).

Paths are read as SimulEval reads them: relative to the working directory. Only the lines
SimulEval will evaluate (``--start-index`` to ``--end-index``) are checked.
"""
from __future__ import annotations

from pathlib import Path

import soundfile as sf

from fairseq_mgcm.errors import MissingFile, UserError, one_line

__all__ = ["BadSource", "check_source_list"]

# The last list checked (path, size, modification time, lines): a sweep builds one agent per run.
_CHECKED: set[tuple[str, int, int, int, int, bool]] = set()


class BadSource(UserError, ValueError):
    """A source list entry SimulEval cannot read as audio."""


def check_source_list(source: str | Path, start: int = 0, end: int | None = None,
                      scoring: bool = False) -> None:
    """Raise :class:`BadSource` (or :class:`MissingFile`) for the first wav of ``source``'s
    lines ``start``..``end`` (0-based, end excluded) that is missing or not readable audio, or,
    with SimulEval's ``scoring``, when every one of them is empty."""
    source = Path(source)
    if not source.is_file():
        raise MissingFile(f"{source}: no such source list (--source)")
    info = source.stat()
    key = (str(source.resolve()), info.st_size, info.st_mtime_ns, start,
           -1 if end is None else end, scoring)
    if key in _CHECKED:
        return
    lines = source.read_text(encoding="utf-8").splitlines()
    samples = 0
    for number, line in enumerate(lines[start:end], start=start + 1):
        where = f"{source}:{number}"
        wav = Path(line.strip())
        if not line.strip():
            raise BadSource(f"{where}: empty line, expected a wav file")
        if not wav.is_file():
            raise BadSource(f"{wav}: no such wav file ({where})")
        if wav.stat().st_size == 0:
            raise BadSource(f"{wav}: empty file (0 bytes), not a wav ({where})")
        try:
            samples += sf.info(str(wav)).frames
        except RuntimeError as error:  # soundfile's LibsndfileError: not audio, a torn header
            raise BadSource(f"{wav}: unreadable audio ({one_line(error)[:200]}) ({where})"
                            ) from None
    if scoring and lines[start:end] and samples == 0:
        raise BadSource(f"{source}: every wav it lists has no samples, so no word would be "
                        "written, and SimulEval's scorer fails on such a run; pass --no-scoring "
                        "to keep the (empty) instances.log")
    _CHECKED.clear()
    _CHECKED.add(key)
