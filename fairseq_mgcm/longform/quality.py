"""BLEU and chrF of a long-form run over its re-segmented sentences.

After re-segmentation every reference sentence has one hypothesis, so the corpus scores are
sacrebleu's over those pairs, all talks together (as simulstream's ``sacrebleu`` scorer does),
with the tokenizer of the segmented sweep (13a) so that the two BLEU columns compare.
"""
from __future__ import annotations

from collections.abc import Sequence

from sacrebleu.metrics.bleu import BLEU
from sacrebleu.metrics.chrf import CHRF

from fairseq_mgcm.longform.resegment import AlignedSentence

__all__ = ["quality_scores"]


def quality_scores(sentences: Sequence[AlignedSentence], tokenize: str = "13a"
                   ) -> tuple[float, float, str]:
    """Corpus BLEU, chrF, and BLEU's sacrebleu signature."""
    hypotheses = [sentence.hypothesis for sentence in sentences]
    references = [[sentence.reference.text for sentence in sentences]]
    bleu = BLEU(tokenize=tokenize)
    bleu_score = bleu.corpus_score(hypotheses, references).score
    chrf_score = CHRF().corpus_score(hypotheses, references).score
    return bleu_score, chrf_score, str(bleu.get_signature())
