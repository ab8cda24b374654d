"""What a recipe stage read: one short key over the *content* of its inputs.

Each stage of scripts/run.sh records in its done marker the settings that produced its
outputs *and* this key, so a stage is redone whenever anything it read changed, and, since a
stage's key covers the markers of the stages it reads, everything downstream is redone with
it. Without it a re-run after another ``--corpus-seed`` reported a model trained on the old
data as "already trained" and mixed its numbers with a sweep over the new data.

What each stage reads, and so what its key covers:

- the corpus (stage 0, ``--corpus text``): the text files' sha256;
- a training (stages 2 and 3): the data it reads (``config.yaml`` and the files beside it: the
  dictionaries, SentencePiece models, CMVN statistics; the train and dev manifests, and their
  feature archives by size and mtime) and the markers of the trainings it starts from;
- averaging (4): the training's marker; offline BLEU (5): the average's marker and the test
  split's data; the sweep (6) keys each run itself, with :func:`data_key` over the shared files
  and the test split's SimulEval inputs.

A training whose inputs changed must not resume: its checkpoints belong to other data (another
dictionary, another corpus). :func:`claim` sets such a training aside (nothing is deleted) so
that fairseq-train starts afresh, while a training whose budget was only extended resumes.

Usage (run.sh)::

    python -m fairseq_mgcm.recipe.lineage key [--data DIR --splits S...] [--simuleval S...]
        [--upstream MARKER...] [--files FILE...]
    python -m fairseq_mgcm.recipe.lineage claim OUT [the same selectors]

Both print the key; ``claim`` first sets OUT's training aside when it was made of other inputs
(holding the training's lock: it refuses while a training writes OUT).
"""
from __future__ import annotations

import argparse
import hashlib
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from fairseq_mgcm.atomic_files import write_text
from fairseq_mgcm.recipe.run_lock import Locked, hold

__all__ = ["claim", "data_key", "files_key", "key", "main", "recorded_key"]

KEY_FILE = ".train.inputs"
"""In a training's folder: the key of the inputs its checkpoints were made of."""
LOCK_FILE = ".train.lock"
"""In a training's folder: held by the training writing it (fairseq_mgcm/recipe/run_lock.py)."""
SET_ASIDE = "stale"
"""In a training's folder: earlier trainings of other inputs, one folder each, kept."""
_SET_ASIDE_NAMES = ("checkpoints", "conflict.jsonl", "train_peak.json", ".train.done")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _stat(path: Path) -> str:
    """Size and mtime: for feature archives (MuST-C's are tens of GB), which data preparation
    only ever replaces whole (atomically), so a new archive always has a new mtime."""
    stat = path.stat()
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def _entries(data_dir: Path, splits: Sequence[str], simuleval: Sequence[str]
             ) -> Iterable[tuple[str, str]]:
    if not data_dir.is_dir():
        raise SystemExit(f"lineage: {data_dir}: no such data folder (is stage 1 done?)")
    for path in sorted(data_dir.iterdir()):  # config.yaml and what it names: dictionaries, ...
        if path.is_file() and not path.name.startswith(".") and path.suffix not in (".tsv", ".zip"):
            yield path.name, _sha256(path)
    for split in splits:
        manifest = data_dir / f"{split}.tsv"
        if not manifest.is_file():
            raise SystemExit(f"lineage: {manifest}: no manifest of split {split!r}")
        yield manifest.name, _sha256(manifest)
        for archive in sorted(data_dir.glob(f"*_{split}.zip")):
            yield archive.name, _stat(archive)
    for split in simuleval:
        folder = data_dir / "simuleval" / split
        if not folder.is_dir():
            raise SystemExit(f"lineage: {folder}: no SimulEval inputs of split {split!r}")
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            name = str(path.relative_to(data_dir))
            yield name, _sha256(path) if path.suffix == ".txt" else _stat(path)


def data_key(data_dir: Path, splits: Sequence[str] = (), simuleval: Sequence[str] = ()) -> str:
    """The content of a prepared data folder as far as a reader sees it: the shared files
    (config, dictionaries, SentencePiece models, CMVN), the manifests and features of
    ``splits`` and the SimulEval inputs (source and target lists, wavs) of ``simuleval``."""
    digest = hashlib.sha256()
    for name, value in _entries(Path(data_dir), splits, simuleval):
        digest.update(f"{name}\t{value}\n".encode())
    return digest.hexdigest()


def files_key(paths: Iterable[Path]) -> str:
    """The content of files read whole (texts, upstream markers); an absent one counts as
    absent, so a marker that appears or disappears changes the key too."""
    digest = hashlib.sha256()
    for path in paths:
        value = _sha256(Path(path)) if Path(path).is_file() else "absent"
        digest.update(f"{path}\t{value}\n".encode())
    return digest.hexdigest()


def key(data_dir: Path | None = None, splits: Sequence[str] = (), simuleval: Sequence[str] = (),
        upstream: Sequence[Path] = (), files: Sequence[Path] = ()) -> str:
    """One short key over everything a stage reads (16 hex digits: a log-friendly length)."""
    parts = [files_key([*upstream, *files])]
    if data_dir is not None:
        parts.append(data_key(data_dir, splits, simuleval))
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def recorded_key(out: Path) -> str | None:
    """The key of the inputs ``out``'s checkpoints were made of; None when it records none."""
    try:
        return (Path(out) / KEY_FILE).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None


def claim(out: Path, inputs_key: str) -> Path | None:
    """Make ``out`` a training of ``inputs_key``: when its checkpoints were made of other
    inputs, move them (and their telemetry and marker) into ``out/stale/<time>-<old key>/``
    and return that folder, so fairseq-train starts afresh instead of resuming a model of other
    data. Nothing is deleted. A training folder without a key file (before this recipe kept
    one) is taken as it is."""
    key_file = Path(out) / KEY_FILE
    old = recorded_key(out)
    moved = None
    if old is not None and old != inputs_key:
        moved = Path(out) / SET_ASIDE / f"{time.strftime('%Y%m%d-%H%M%S')}-{old}"
        moved.mkdir(parents=True, exist_ok=True)
        for name in _SET_ASIDE_NAMES:
            if (Path(out) / name).exists():
                (Path(out) / name).rename(moved / name)
    Path(out).mkdir(parents=True, exist_ok=True)
    write_text(key_file, inputs_key + "\n", if_changed=True)
    return moved


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fairseq_mgcm.recipe.lineage",
                                     description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    selectors = argparse.ArgumentParser(add_help=False)
    selectors.add_argument("--data", type=Path, help="a prepared data folder")
    selectors.add_argument("--splits", nargs="*", default=[], help="the splits read from it")
    selectors.add_argument("--simuleval", nargs="*", default=[],
                           help="splits whose SimulEval inputs are read")
    selectors.add_argument("--upstream", type=Path, nargs="*", default=[],
                           help="the done markers of the stages read")
    selectors.add_argument("--files", type=Path, nargs="*", default=[], help="files read whole")
    commands.add_parser("key", parents=[selectors], help="print the key")
    take = commands.add_parser("claim", parents=[selectors],
                               help="set OUT's training aside when made of other inputs")
    take.add_argument("out", type=Path)
    args = parser.parse_args(argv)
    inputs_key = key(args.data, args.splits, args.simuleval, args.upstream, args.files)
    if args.command == "claim":
        moved = None
        if recorded_key(args.out) in (None, inputs_key):  # nothing to set aside
            claim(args.out, inputs_key)
        else:
            try:  # never set aside the checkpoints of a training that is writing them now
                with hold(args.out / LOCK_FILE, ["lineage", "claim", str(args.out)]):
                    moved = claim(args.out, inputs_key)
            except Locked as locked:
                raise SystemExit(f"ERROR: {locked}") from None
        if moved is not None:
            print(f"{args.out}: the data or the model it starts from changed since it was trained: "
                  f"its checkpoints are set aside in {moved}; training starts afresh",
                  file=sys.stderr)
    print(inputs_key)
    return 0


if __name__ == "__main__":
    sys.exit(main())
