"""Validation BLEU as summable sufficient statistics (n-gram counts), computed with sacrebleu.

Each validation batch logs its n-gram match counts and totals; ``reduce_bleu`` sums them over
batches and workers and derives corpus BLEU, so the reported score is corpus-level, not an
average of per-batch scores.
"""

from __future__ import annotations

import numpy as np
import sacrebleu
from fairseq.logging import metrics
from fairseq.logging.meters import MetersDict
from sacrebleu.metrics import BLEU

ORDER = 4


def bleu_logging_output(hyps: list[str], refs: list[str]) -> dict[str, float]:
    """Sufficient statistics of detokenized hypotheses against references."""
    bleu = sacrebleu.corpus_bleu(hyps, [refs])
    out: dict[str, float] = {"_bleu_sys_len": bleu.sys_len, "_bleu_ref_len": bleu.ref_len}
    for i in range(ORDER):
        out[f"_bleu_counts_{i}"] = bleu.counts[i]
        out[f"_bleu_totals_{i}"] = bleu.totals[i]
    return out


def _compute(meters: MetersDict) -> float:
    score = BLEU.compute_bleu(
        correct=meters["_bleu_counts"].sum,
        total=meters["_bleu_totals"].sum,
        sys_len=int(meters["_bleu_sys_len"].sum),
        ref_len=int(meters["_bleu_ref_len"].sum),
        smooth_method="exp",
    )
    return round(score.score, 2)


def reduce_bleu(logging_outputs: list[dict]) -> None:
    """Sum the statistics and log ``bleu`` as a derived fairseq metric."""

    def total(key: str) -> float:
        return float(sum(log.get(key, 0) for log in logging_outputs))

    counts = [total(f"_bleu_counts_{i}") for i in range(ORDER)]
    totals = [total(f"_bleu_totals_{i}") for i in range(ORDER)]
    if max(totals) == 0:
        return
    metrics.log_scalar("_bleu_counts", np.array(counts))
    metrics.log_scalar("_bleu_totals", np.array(totals))
    metrics.log_scalar("_bleu_sys_len", total("_bleu_sys_len"))
    metrics.log_scalar("_bleu_ref_len", total("_bleu_ref_len"))
    metrics.log_derived("bleu", _compute)
