"""The recipe's runs: one per method, or one per method and seed (``--seeds``).

Stages 3-6 work run by run and stage 7 reads them all, so where a run lives must be decided in
one place: ``$exp_dir/<method>`` for the single run per method, ``$exp_dir/<method>/seed<N>``
with ``--seeds`` (so adding seeds later never moves a finished run of another seed).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["Run", "run_matrix"]


@dataclass(frozen=True)
class Run:
    """One training (a method at a seed) with its evaluations."""

    method: str
    seed: str
    folder: Path
    seeded: bool  # part of a --seeds comparison (the folder and names say the seed)

    @property
    def id(self) -> str:
        """A file-name-safe name: ``mgcm`` or ``mgcm_seed2`` (logs/<id>.log under --jobs)."""
        return f"{self.method}_seed{self.seed}" if self.seeded else self.method

    @property
    def label(self) -> str:
        """How the log names the run: ``mgcm`` or ``mgcm (seed 2)``."""
        return f"{self.method} (seed {self.seed})" if self.seeded else self.method


def run_matrix(exp_dir: Path, methods: list[str], seeds: list[str] | None,
               seed: str) -> list[Run]:
    """Every run in the order the recipe does them: seed by seed, each seed every method (so
    results for all methods grow together). ``seeds`` None or empty: one run per method at
    ``seed``."""
    if not seeds:
        return [Run(method, seed, Path(exp_dir) / method, False) for method in methods]
    return [Run(method, s, Path(exp_dir) / method / f"seed{s}", True)
            for s in seeds for method in methods]
