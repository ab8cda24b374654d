"""SimulEval source lists that move with their data folder.

The preparation writes ``simuleval/<split>/source.txt`` with paths relative to the list's own
folder (``wav/<id>.wav``), so a prepared folder can be copied anywhere. SimulEval opens each
listed path as given (relative to its working directory), so a run from elsewhere first gets an
absolute copy of the list from ``resolve_source_list`` (``scripts/simuleval_sweep.py`` does
this) or runs inside the list's folder.

Usage: ``python -m fairseq_mgcm.data.mustc.source_list LIST OUT`` writes the absolute copy.
"""
import sys
from pathlib import Path

from fairseq_mgcm.atomic_files import write_lines


def resolved_sources(list_path: Path) -> list[str]:
    """The list's paths, each relative one resolved against the list's folder."""
    folder = Path(list_path).resolve().parent
    lines = Path(list_path).read_text(encoding="utf-8").splitlines()
    return [line if Path(line).is_absolute() else str(folder / line) for line in lines if line]


def resolve_source_list(list_path: Path, out_path: Path) -> Path:
    """Write ``out_path``: ``list_path`` with absolute paths (unchanged files are not rewritten)."""
    write_lines(Path(out_path), resolved_sources(list_path), if_changed=True)
    return Path(out_path)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python -m fairseq_mgcm.data.mustc.source_list LIST OUT")
    resolve_source_list(Path(sys.argv[1]), Path(sys.argv[2]))
