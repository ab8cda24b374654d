"""Score a SimulEval ``instances.log`` twice: non-computation-aware and computation-aware.

SimulEval 1.1.4 builds each latency scorer named on ``--latency-metrics`` with
``computation_aware=args.computation_aware`` (``SentenceLevelEvaluator.from_args``), and adds
``<name>_CA`` scorers only when that flag is on. So a run with ``--computation-aware`` reports the
computation-aware value under *both* ``AL`` and ``AL_CA``; the plain ``AL`` is lost. Every
instance in the log carries both its ``delays`` (source time at each write) and its ``elapsed``
(source time plus wall-clock time), so re-scoring the same log with SimulEval's own scorer classes,
once with ``computation_aware=False`` and once with ``True``, recovers both. This is what
``simuleval --score-only`` does, without parsing its printed table.
"""
from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

from sacrebleu.metrics.bleu import BLEU
from simuleval.evaluator.instance import LogInstance
from simuleval.evaluator.scorers import get_scorer_class

LATENCY_METRICS = ("AL", "LAAL", "AP", "DAL", "ATD", "StartOffset", "EndOffset")


def load_instances(log_path: Path, latency_unit: str = "word") -> dict[int, LogInstance]:
    """Instances of a SimulEval output log, keyed 0..n-1 in log order."""
    if not log_path.is_file():
        raise FileNotFoundError(f"{log_path}: no SimulEval instances log")
    instances: dict[int, LogInstance] = {}
    with open(log_path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                instances[len(instances)] = LogInstance(line, latency_unit)
            except (json.JSONDecodeError, KeyError) as err:
                raise ValueError(f"{log_path}:{line_no}: not a SimulEval instance ({err})") from err
    if not instances:
        raise ValueError(f"{log_path}: empty, the SimulEval run wrote no instance")
    return instances


def latency_scores(
    instances: dict[int, LogInstance], computation_aware: bool, metrics: tuple[str, ...]
) -> dict[str, float]:
    """Corpus latency as SimulEval computes it (mean over instances that wrote something)."""
    scores: dict[str, float] = {}
    for name in metrics:
        scorer = get_scorer_class("latency", name)(
            computation_aware=computation_aware, use_ref_len=True
        )
        try:
            scores[name] = float(scorer(instances))
        except statistics.StatisticsError:  # no instance wrote anything
            scores[name] = math.nan
    return scores


def bleu(instances: dict[int, LogInstance], tokenize: str = "13a") -> tuple[float, str]:
    """Corpus BLEU of the predictions (as SimulEval's ``BLEU`` scorer) and sacrebleu's signature."""
    metric = BLEU(tokenize=tokenize)
    hyps = [ins.prediction for ins in instances.values()]
    refs = [[ins.reference for ins in instances.values()]]
    score = metric.corpus_score(hyps, refs)
    return score.score, str(metric.get_signature())


def score_log(
    log_path: Path, metrics: tuple[str, ...] = LATENCY_METRICS, tokenize: str = "13a"
) -> tuple[dict[str, float], str]:
    """BLEU, plain latency and ``<name>_CA`` latency of one run; also the BLEU signature."""
    instances = load_instances(log_path)
    bleu_score, signature = bleu(instances, tokenize)
    plain = latency_scores(instances, computation_aware=False, metrics=metrics)
    aware = latency_scores(instances, computation_aware=True, metrics=metrics)
    row = {"BLEU": bleu_score, **plain, **{f"{k}_CA": v for k, v in aware.items()}}
    row["n_instances"] = float(len(instances))
    return row, signature
