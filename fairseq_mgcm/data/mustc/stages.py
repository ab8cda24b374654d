"""Where MuST-C preparation keeps its done markers: ``<out_dir>/.done/<stage>.json``.

The markers themselves (what they record, when a step counts as done, atomic writes) are the
project's one helper, :mod:`fairseq_mgcm.markers`; this module only names the files, so the
prepared data folder carries its own resumable state.
"""
from pathlib import Path

from fairseq_mgcm import markers
from fairseq_mgcm.markers import file_signature, texts_signature

__all__ = ["clear", "file_signature", "is_done", "mark_done", "texts_signature"]


def _marker(out_dir: Path, stage: str) -> Path:
    return out_dir / ".done" / f"{stage}.json"


def is_done(out_dir: Path, stage: str, signature: dict[str, object], outputs: list[Path]) -> bool:
    """The stage's marker records ``signature`` and every output exists."""
    return markers.is_done(_marker(out_dir, stage), signature, outputs)


def mark_done(out_dir: Path, stage: str, signature: dict[str, object]) -> None:
    markers.mark_done(_marker(out_dir, stage), signature)


def clear(out_dir: Path, stage: str) -> None:
    """Forget a stage before redoing it, so a crash midway cannot leave a stale marker."""
    markers.clear(_marker(out_dir, stage))
