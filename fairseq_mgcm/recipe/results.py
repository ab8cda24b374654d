"""Collect a recipe's outputs into one markdown table (methods side by side).

Reads, for each run directory (``EXP/<method>/``, or ``EXP/<method>/seed<N>/`` per seed):
  offline_bleu.txt     the line fairseq-generate prints with the corpus BLEU
  simul/results.tsv    the sweep's table (one row per policy, its value and segment size)
  longform/results.tsv the long-form stage's table (fairseq_mgcm/longform/stage.py), if run
  train_peak.json      fairseq_mgcm.recipe.peak_memory's record of the training run
  conflict.jsonl       the conflict engine's aggregated telemetry (optional, streamed)
  checkpoints/train.log  fairseq-train's log: the dev curve (ST loss on dev after each epoch)
Missing pieces show as "-" so a partial run still reports what it has; a piece that is there
but not as written (a torn row, "49.0x") raises ResultFileError naming file and line
(:mod:`fairseq_mgcm.recipe.result_files`).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from fairseq_mgcm.conflict.telemetry import read_windows
from fairseq_mgcm.recipe.policy_labels import point_label, policy_rank
from fairseq_mgcm.recipe.result_files import (
    ResultFileError,
    number,
    read_offline_bleu,
    read_sweep_table,
    read_train_peak,
)

__all__ = ["MethodResult", "collect", "run_dir", "markdown_table", "PAPER_REFERENCE"]

# What Liu et al. (2024, arXiv:2409.15911) report on MuST-C En-De (DiSeg baseline): the offline
# BLEU gain of MGCM over plain multi-task training, greedy and beam 5.
PAPER_REFERENCE = {"offline_bleu_gain_greedy": 0.68, "offline_bleu_gain_beam5": 0.63}

# fairseq-train's end-of-epoch validation line, e.g.
# "... | dev | epoch 007 | valid on 'dev' subset | loss 9.1 | nll_loss 4.7 | st_loss 5.2 | ..."
_VALID = re.compile(r"\| epoch (\d+) \| valid on '[^']+' subset \|.*?\| nll_loss (\S+) \|")


@dataclass
class MethodResult:
    """One training run (a method, and a seed when the recipe ran several) and its evaluations."""

    method: str
    seed: int | None = None
    root: Path | None = None  # the run's directory
    offline_bleu: float | None = None
    simul: list[dict[str, float]] = field(default_factory=list)  # rows of results.tsv
    simul_logs: list[Path] = field(default_factory=list)  # each row's SimulEval instances.log
    simul_policies: list[str] = field(default_factory=list)  # each row's --policy
    longform: list[dict[str, float]] = field(default_factory=list)  # longform/results.tsv rows
    peak_rss_mb: float | None = None
    train_wall_s: float | None = None
    train_cpu_s: float | None = None  # user + system CPU time of the training processes
    conflict_rate: dict[str, float] = field(default_factory=dict)  # per task pair
    dev_curve: dict[int, float] = field(default_factory=dict)  # epoch -> dev ST nll (base 2)


def _simul_rows(path: Path) -> tuple[list[dict[str, float]], list[Path], list[str]]:
    """The sweep's rows (numbers), each row's instances.log, found beside ``path`` by the
    run folder's name, so that a moved experiment folder still finds its logs, and each row's
    policy."""
    if not path.exists():
        return [], [], []
    table = read_sweep_table(path)
    return (table.rows, [path.parent / Path(output or "-").name / "instances.log"
                         for output in table.outputs], table.policies)


def _dev_curve(path: Path) -> dict[int, float]:
    """Epoch -> the primary (ST) task's token-level NLL on dev, in bits, as fairseq-train logged
    it after each epoch. A resumed run logs an epoch again: the last line of an epoch wins."""
    if not path.exists():
        return {}
    curve: dict[int, float] = {}
    with path.open(encoding="utf-8", errors="replace") as f:
        for line_no, line in enumerate(f, 1):
            match = _VALID.search(line)
            if match:
                curve[int(match.group(1))] = number(match.group(2), f"{path}:{line_no}",
                                                    "nll_loss")
    return curve


def _conflict_rate(path: Path) -> dict[str, float]:
    """Per task pair, the share of (backward call, module) records in the telemetry that
    conflicted, streamed window by window (schema: :mod:`fairseq_mgcm.conflict.telemetry`)."""
    if not path.exists():
        return {}
    flags: dict[str, int] = {}
    total: dict[str, int] = {}
    try:
        for window in read_windows(path):
            for tally in window.modules:
                flags[tally.pair] = flags.get(tally.pair, 0) + tally.conflicts
                total[tally.pair] = total.get(tally.pair, 0) + tally.n
    except ValueError as error:  # names file:line
        raise ResultFileError(str(error)) from None
    return {pair: flags[pair] / total[pair] for pair in sorted(total) if total[pair]}


def run_dir(exp_dir: Path, method: str, seed: int | None) -> Path:
    """Where scripts/run.sh puts one run (``run_dir`` there)."""
    return exp_dir / method if seed is None else exp_dir / method / f"seed{seed}"


def collect(exp_dir: str | Path, methods: list[str],
            seeds: list[int] | None = None) -> list[MethodResult]:
    """Every run of ``methods`` (x ``seeds``, when given), seed by seed within a method."""
    exp_dir = Path(exp_dir)
    results = []
    seed_list: list[int | None] = list(seeds) if seeds else [None]
    runs = [(m, s) for m in methods for s in seed_list]
    for method, seed in runs:
        root = run_dir(exp_dir, method, seed)
        result = MethodResult(method, seed, root)
        result.offline_bleu = read_offline_bleu(root / "offline_bleu.txt")
        result.simul, result.simul_logs, result.simul_policies = _simul_rows(
            root / "simul" / "results.tsv")
        result.longform, _, _ = _simul_rows(root / "longform" / "results.tsv")
        peak = root / "train_peak.json"
        if peak.exists():
            record = read_train_peak(peak)
            result.peak_rss_mb = record.get("peak_rss_mb")
            result.train_wall_s = record.get("wall_s")
            result.train_cpu_s = record.get("cpu_s")
        result.conflict_rate = _conflict_rate(root / "conflict.jsonl")
        result.dev_curve = _dev_curve(root / "checkpoints" / "train.log")
        results.append(result)
    return results


def _label(result: MethodResult) -> str:
    return result.method if result.seed is None else f"{result.method} seed {result.seed}"


def _fmt(value: float | None, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}"


def markdown_table(results: list[MethodResult]) -> str:
    """Two tables: per method (offline BLEU, memory, conflicts), then BLEU/AL per policy
    and value (``k=5``, ``f=4``, ``alpha=0.4``, ``n=2``), ordered by method then policy."""
    lines = ["| run | offline BLEU | peak RSS (MB) | train wall (s) | conflict rate by pair |",
             "|---|---:|---:|---:|---|"]
    for r in results:
        rates = ", ".join(f"{pair} {rate:.3f}" for pair, rate in r.conflict_rate.items()) or "-"
        lines.append(f"| {_label(r)} | {_fmt(r.offline_bleu)} | {_fmt(r.peak_rss_mb, 0)} | "
                     f"{_fmt(r.train_wall_s, 0)} | {rates} |")
    simul = [(r, policy, row) for r in results
             for policy, row in zip(r.simul_policies, r.simul)]
    if simul:
        methods = list(dict.fromkeys(r.method for r in results))
        # method, then policy; seeds and the sweep's order of values kept within (stable sort)
        simul.sort(key=lambda item: (methods.index(item[0].method), policy_rank(item[1])))
        lines += ["", "| run | policy | parameter | BLEU | AL (ms) | AL_CA (ms) | LAAL (ms) | "
                  "AP | DAL (ms) |",
                  "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
        for result, policy, row in simul:
            lines.append(
                f"| {_label(result)} | {policy} | {point_label(policy, row['value'])} | "
                f"{_fmt(row.get('BLEU'))} | {_fmt(row.get('AL'), 0)} | "
                f"{_fmt(row.get('AL_CA'), 0)} | {_fmt(row.get('LAAL'), 0)} | "
                f"{_fmt(row.get('AP'))} | {_fmt(row.get('DAL'), 0)} |")
    return "\n".join(lines) + "\n"
