"""Done-markers for resumable stages (like icefall's ``.done`` files, but content-aware).

A stage writes its outputs atomically, then ``<out_dir>/.done/<stage>.json`` holding a
signature of its inputs and parameters. A re-run skips the stage only when the marker's
signature equals the new one and every output still exists; changed inputs redo the stage.
"""
import hashlib
import json
from pathlib import Path

from fairseq_mgcm.atomic_files import write_text


def file_signature(paths: list[Path], hash_contents: list[Path] = ()) -> dict:
    """Sizes and mtimes of ``paths``; a sha256 of the files in ``hash_contents`` (those whose
    edits must count even when size and mtime stay the same: texts, yaml).

    The MuST-C train texts and yaml (~80 MB) hash in well under a second.
    """
    sig = {str(p): [p.stat().st_size, p.stat().st_mtime_ns] for p in paths}
    for p in hash_contents:
        sig[f"sha256:{p}"] = hashlib.sha256(p.read_bytes()).hexdigest()
    return sig


def texts_signature(texts: list[str]) -> str:
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode("utf-8") + b"\n")
    return digest.hexdigest()


def _marker(out_dir: Path, stage: str) -> Path:
    return out_dir / ".done" / f"{stage}.json"


def is_done(out_dir: Path, stage: str, signature: dict, outputs: list[Path]) -> bool:
    marker = _marker(out_dir, stage)
    if not marker.is_file() or not all(p.exists() for p in outputs):
        return False
    try:
        return json.loads(marker.read_text(encoding="utf-8")) == signature
    except ValueError:
        return False


def mark_done(out_dir: Path, stage: str, signature: dict) -> None:
    write_text(_marker(out_dir, stage), json.dumps(signature, sort_keys=True, indent=1))


def clear(out_dir: Path, stage: str) -> None:
    """Forget a stage before redoing it, so a crash midway cannot leave a stale marker."""
    _marker(out_dir, stage).unlink(missing_ok=True)
