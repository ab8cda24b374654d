"""Check the ``audio`` column of a fairseq MuST-C manifest against the feature zip it names.

fairseq's manifests point into ``fbank80.zip`` by ``<zip>:<byte offset>:<byte length>`` and
give ``n_frames``; fairseq itself trusts both. A manifest edited by hand, or written for an
older zip, then trains on the wrong utterance's features or on bytes that are no array at all,
without a word. So every row is checked: its bytes must be exactly one stored member's data,
that member must be ``<id>.npy`` (fairseq names each member after its segment id), and the
array it holds must have ``n_frames`` rows.
"""
import io
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

from fairseq_mgcm.data.errors import CorpusError
from fairseq_mgcm.data.mustc.features import stored_entry_offsets

_NPY_HEADER_BYTES = 1024  # enough for the header of any 2-D float array


@dataclass
class _FeatureZip:
    path: Path
    relative: str  # as written into our manifest: relative to the output folder
    size: int
    members: dict[int, tuple[str, int]]  # data offset -> (member name, byte length)
    file: BinaryIO = field(repr=False)

    def check(self, place: str, row_id: str, offset: int, length: int, n_frames: int) -> None:
        """Raise CorpusError (``place`` is ``manifest:line``) unless the row's bytes are its
        member's whole data and that member holds ``n_frames`` rows."""
        if offset + length > self.size:
            raise CorpusError(f"{place}: bytes {offset}-{offset + length} lie past the end of "
                              f"{self.path} ({self.size} bytes); was the zip rebuilt or cut "
                              f"short after the manifest was written?")
        member = self.members.get(offset)
        if member is None or member[1] != length:
            raise CorpusError(f"{place}: no member of {self.path} has its data at byte {offset} "
                              f"with {length} bytes; was the zip rebuilt after the manifest was "
                              f"written?")
        name = member[0]
        if Path(name).stem != row_id:
            raise CorpusError(f"{place}: the audio of id {row_id} is member {name} of "
                              f"{self.path}, not {row_id}.npy (rows mixed up?)")
        self.file.seek(offset)
        rows = _npy_rows(self.file.read(min(length, _NPY_HEADER_BYTES)))
        if rows is None:
            raise CorpusError(f"{place}: member {name} of {self.path} is not a 2-D .npy array")
        if rows != n_frames:
            raise CorpusError(f"{place}: n_frames is {n_frames}, but member {name} of "
                              f"{self.path} holds {rows} frames")


def _npy_rows(head: bytes) -> int | None:
    """The number of rows of the 2-D array whose .npy file starts with ``head``, or None."""
    buffer = io.BytesIO(head)
    try:
        version = np.lib.format.read_magic(buffer)
        read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                       else np.lib.format.read_array_header_2_0)
        shape, _, _ = read_header(buffer)
    except ValueError:
        return None
    return int(shape[0]) if len(shape) == 2 else None


class FeatureZips:
    """Finds the feature zip a manifest names, also after the folder has moved (fairseq writes
    absolute paths, so a zip that is not where the manifest says is looked for by name next to
    the manifests), and checks every row against it. Use as a context manager: the zips stay
    open while the manifests are read."""

    def __init__(self, fairseq_dir: Path, out_dir: Path) -> None:
        self._fairseq_dir = fairseq_dir
        self._out_dir = out_dir.resolve()
        self._found: dict[str, _FeatureZip] = {}

    def __enter__(self) -> "FeatureZips":
        return self

    def __exit__(self, *exc: object) -> None:
        for feature_zip in self._found.values():
            feature_zip.file.close()

    def relative(self, audio: str, row_id: str, n_frames: int, place: str) -> str:
        """``audio`` (``<zip>:<offset>:<length>``) checked, its zip path made relative to the
        output folder; ``place`` (``manifest:line``) starts every error message."""
        parts = audio.rsplit(":", 2)
        if len(parts) != 3 or not (parts[1].isdigit() and parts[2].isdigit()):
            raise CorpusError(f"{place}: audio {audio!r} is not '<zip>:<offset>:<length>' "
                              f"(fbank features in a zip are needed)")
        zip_name, offset, length = parts[0], int(parts[1]), int(parts[2])
        if zip_name not in self._found:
            self._found[zip_name] = self._open(zip_name, place)
        feature_zip = self._found[zip_name]
        feature_zip.check(place, row_id, offset, length, n_frames)
        return f"{feature_zip.relative}:{offset}:{length}"

    def _open(self, zip_name: str, place: str) -> _FeatureZip:
        written = Path(zip_name)
        candidates = [written if written.is_absolute() else self._fairseq_dir / written,
                      self._fairseq_dir / written.name]
        path = next((p for p in candidates if p.is_file()), None)
        if path is None:
            raise CorpusError(f"{place}: feature zip {zip_name} not found "
                              f"(looked for {' and '.join(str(p) for p in candidates)})")
        try:
            offsets = stored_entry_offsets(path)
        except (OSError, ValueError, zipfile.BadZipFile) as e:
            raise CorpusError(f"{place}: {path} is not a readable zip of stored .npy "
                              f"features ({e})") from e
        members = {offset: (name, length) for name, (offset, length) in offsets.items()}
        return _FeatureZip(path, os.path.relpath(path.resolve(), self._out_dir),
                           path.stat().st_size, members, open(path, "rb"))
