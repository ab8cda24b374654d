"""Paired significance of one method against another, over every seed both finished.

A BLEU difference between two single training runs mixes the method's effect with the noise of
the seed and of the test sample. Here each seed of a method is paired with the same seed of the
baseline (the recipe gives both the same initialisation and batch order, only the method
differs), the hypotheses of all those seeds are pooled sentence by sentence, and sacrebleu's own
paired approximate randomization test (Riezler and Maxwell 2005, as in MultEval;
``sacrebleu.significance.PairedTest``, 10,000 trials, its fixed ``SACREBLEU_SEED``) tests BLEU
and chrF on the pooled set. The p-value is two-sided. sacrebleu also gives each system's
bootstrap mean with a 95% confidence interval (1,000 resamples); it gives none for the
difference. Two identical outputs get p = 1 here without a test: sacrebleu would report its
smallest p-value for them, as it counts only shuffles whose difference strictly exceeds the
observed one.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import cast

from sacrebleu.metrics.bleu import BLEU
from sacrebleu.metrics.chrf import CHRF
from sacrebleu.significance import PairedTest, Result

from fairseq_mgcm.recipe.hypotheses import Translations

__all__ = ["PairedResult", "paired_test", "N_TRIALS", "N_RESAMPLES"]

N_TRIALS = 10_000  # approximate randomization
N_RESAMPLES = 1_000  # bootstrap, for each system's confidence interval


@dataclass(frozen=True)
class PairedResult:
    """``system`` against ``baseline`` on the pooled hypotheses of ``seeds``."""

    seeds: tuple[int, ...]
    n_sentences: int
    bleu_delta: float  # corpus BLEU of the pooled hypotheses, system minus baseline
    bleu_p: float
    chrf_delta: float
    chrf_p: float
    system_bleu: tuple[float, float]  # bootstrap mean, half-width of its 95% interval
    baseline_bleu: tuple[float, float]
    signatures: str  # sacrebleu's, of both metrics and the test


def paired_test(baseline: Mapping[int, Translations], system: Mapping[int, Translations],
                n_trials: int = N_TRIALS) -> PairedResult | None:
    """Test ``system`` against ``baseline`` (both keyed by seed); None when no seed is shared."""
    seeds = tuple(sorted(set(baseline) & set(system)))
    if not seeds:
        return None
    base_hyps: list[str] = []
    sys_hyps: list[str] = []
    refs: list[str] = []
    for seed in seeds:
        base, sys_ = baseline[seed], system[seed]
        if set(base.hypotheses) != set(sys_.hypotheses):
            raise ValueError(f"{sys_.source} and {base.source} translate different test items "
                             f"({len(sys_)} and {len(base)}); were they decoded on one split?")
        for index in sorted(base.hypotheses):
            if base.references[index] != sys_.references[index]:
                raise ValueError(f"{sys_.source} and {base.source}: item {index} has different "
                                 "references; were they decoded on one split?")
            base_hyps.append(base.hypotheses[index])
            sys_hyps.append(sys_.hypotheses[index])
            refs.append(base.references[index])
    if base_hyps == sys_hyps:
        return _identical(seeds, base_hyps, refs)
    test = PairedTest([("baseline", base_hyps), ("system", sys_hyps)],
                      {"BLEU": BLEU(), "chrF": CHRF()}, [refs], test_type="ar",
                      n_samples=n_trials, n_ar_confidence=N_RESAMPLES)
    signatures, scores = test()  # scores: "System" and one entry per metric, in the order given
    bleu_name, chrf_name = signatures
    bleu_base, bleu_sys = cast(list[Result], scores[bleu_name])
    chrf_base, chrf_sys = cast(list[Result], scores[chrf_name])
    return PairedResult(
        seeds=seeds, n_sentences=len(refs),
        bleu_delta=bleu_sys.score - bleu_base.score, bleu_p=_p(bleu_sys),
        chrf_delta=chrf_sys.score - chrf_base.score, chrf_p=_p(chrf_sys),
        system_bleu=(float(bleu_sys.mean or 0.0), float(bleu_sys.ci or 0.0)),
        baseline_bleu=(float(bleu_base.mean or 0.0), float(bleu_base.ci or 0.0)),
        signatures=f"{bleu_name}: {signatures[bleu_name]}; {chrf_name}: {signatures[chrf_name]}")


def _p(result: Result) -> float:
    assert result.p_value is not None, "sacrebleu gives every system but the baseline a p-value"
    return float(result.p_value)


def _identical(seeds: tuple[int, ...], hyps: list[str], refs: list[str]) -> PairedResult:
    bleu = BLEU()
    score = bleu.corpus_score(hyps, [refs]).score
    return PairedResult(seeds=seeds, n_sentences=len(refs), bleu_delta=0.0, bleu_p=1.0,
                        chrf_delta=0.0, chrf_p=1.0, system_bleu=(score, 0.0),
                        baseline_bleu=(score, 0.0),
                        signatures=f"BLEU: {bleu.get_signature()}; identical outputs, not tested")
