"""Atomic file writing, the one helper for the whole project (data, recipes, scripts).

A crash or Ctrl-C never leaves a half-written output behind: every output is written to a
temporary file in the same directory and moved into place with ``os.replace`` (atomic on
POSIX), so a re-run can trust that any file it finds is complete.
"""
import contextlib
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_current_umask()  # what open() would give; mkstemp's default is 0600


# atomic_path's names: ".<name>." + 8 of "abcdefghijklmnopqrstuvwxyz0123456789_" + ".tmp"
_TEMP_NAME = re.compile(r"\..+\.[a-z0-9_]{8}\.tmp")


def remove_stale_temps(folder: Path) -> list[Path]:
    """Remove the temporary files ``atomic_path`` left in ``folder`` when a process was killed
    (SIGKILL cannot be caught, so nobody else ever removes them). Call it only on a folder that
    no other process is writing to."""
    if not folder.is_dir():
        return []
    stale = [p for p in folder.iterdir() if _TEMP_NAME.fullmatch(p.name) and p.is_file()]
    for p in stale:
        p.unlink()
    return stale


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; move it onto ``path`` if the block succeeds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_open(path: Path, mode: str = "w") -> Iterator[IO]:
    """Open a temporary file for writing; it replaces ``path`` when the block succeeds."""
    encoding = None if "b" in mode else "utf-8"
    with atomic_path(path) as tmp:
        with open(tmp, mode, encoding=encoding, newline="" if encoding else None) as f:
            yield f


def write_text(path: Path, text: str, if_changed: bool = False) -> None:
    """Write ``text`` atomically; with ``if_changed``, leave an identical file untouched (so
    re-runs keep mtimes and anything watching them sees no change)."""
    if if_changed and path.is_file():
        try:
            if path.read_text(encoding="utf-8") == text:
                return
        except (OSError, UnicodeDecodeError):
            pass
    with atomic_open(path) as f:
        f.write(text)


def write_lines(path: Path, lines: list[str], if_changed: bool = False) -> None:
    """Write one line per item (each ending in a newline), atomically."""
    write_text(path, "".join(line + "\n" for line in lines), if_changed)


def copy_file(src: Path, dst: Path, if_changed: bool = True) -> None:
    """Copy ``src`` onto ``dst`` atomically; with ``if_changed``, leave an identical ``dst``
    untouched (re-runs stay byte- and mtime-identical)."""
    data = Path(src).read_bytes()
    dst = Path(dst)
    if if_changed and dst.is_file() and dst.read_bytes() == data:
        return
    with atomic_path(dst) as tmp:
        tmp.write_bytes(data)
